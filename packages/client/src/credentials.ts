// Where the CLI and dynamo-bench find credentials, so that none has to be typed on a command
// line (argv is visible to every user through ps):
// - the cluster secret (operator calls): --secret-file, DYNAMO_CLUSTER_SECRET_FILE,
//   DYNAMO_CLUSTER_SECRET, --secret (accepted, not recommended), and last the local cluster's
//   own file, ./data/cluster-secret, which `npm start` writes: so against a local cluster the
//   CLI finds its secret by itself;
// - a bearer token (clients of a cluster with --require-client-auth, or an admin token):
//   --token-file, DYNAMO_TOKEN_FILE, DYNAMO_TOKEN;
// - the CA of a cluster with TLS on (its nodes are then reached over https): --ca-file, DYNAMO_CA_FILE.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface ResolvedCredentials {
  readonly clusterSecret?: string;
  readonly token?: string;
  /** PEM of the CA that signed the nodes' certificates. */
  readonly ca?: string;
}

export class CredentialsError extends Error {
  override name = "CredentialsError";
}

function readSecretFile(file: string, what: string): string {
  try {
    const text = readFileSync(file, "utf8").replace(/\r?\n$/, "");
    if (text === "") throw new CredentialsError(`${what} ${file} is empty`);
    return text;
  } catch (err) {
    if (err instanceof CredentialsError) throw err;
    throw new CredentialsError(`cannot read ${what} ${file}: ${(err as Error).message}`);
  }
}

export function resolveCredentials(
  flags: ReadonlyMap<string, string>,
  env: Readonly<Record<string, string | undefined>>,
  cwd: string = process.cwd(),
): ResolvedCredentials {
  let clusterSecret: string | undefined;
  const secretFile = flags.get("secret-file") ?? env["DYNAMO_CLUSTER_SECRET_FILE"];
  if (secretFile) clusterSecret = readSecretFile(secretFile, "the cluster secret file");
  else clusterSecret = env["DYNAMO_CLUSTER_SECRET"] || flags.get("secret") || undefined;
  if (clusterSecret === undefined) {
    const local = join(cwd, "data", "cluster-secret");
    if (existsSync(local)) clusterSecret = readSecretFile(local, "the local cluster's secret file");
  }
  let token: string | undefined;
  const tokenFile = flags.get("token-file") ?? env["DYNAMO_TOKEN_FILE"];
  if (tokenFile) token = readSecretFile(tokenFile, "the token file");
  else token = env["DYNAMO_TOKEN"] || undefined;
  const caFile = flags.get("ca-file") ?? env["DYNAMO_CA_FILE"];
  let ca: string | undefined;
  if (caFile) {
    ca = readSecretFile(caFile, "the CA file");
    if (!ca.includes("-----BEGIN CERTIFICATE-----")) throw new CredentialsError(`the CA file ${caFile} holds no PEM certificate`);
  }
  return { ...(clusterSecret ? { clusterSecret } : {}), ...(token ? { token } : {}), ...(ca ? { ca } : {}) };
}
