// Who may do what. Three kinds of caller:
// - other nodes, and operators with the cluster secret: the `x-dynamo-cluster-secret` header (or
//   `Authorization: Bearer <secret>`): everything;
// - clients with a bearer token from the tokens file (`--tokens-file`), each token with roles:
//   `read` (Get), `write` (Put, Delete), `admin` (every AdminService method, the dashboard's
//   state; implies read and write);
// - anyone else: the key API only while `--require-client-auth` is off (the default, for local
//   use). Admin methods always need the secret or an admin token.
// Secrets and tokens are compared as SHA-256 digests with timingSafeEqual, each against every
// known token, so the time taken says nothing about how close a guess was. The tokens file is
// re-read when it changes (checked every few seconds), so tokens are added and revoked without
// a restart.
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { Code, ConnectError } from "@connectrpc/connect";
import { CLUSTER_SECRET_HEADER } from "@dynamo-ts/proto";

export type Role = "read" | "write" | "admin";
const ROLES: readonly Role[] = ["read", "write", "admin"];

/** Reads one request header, whatever the request's shape (Connect `Headers`, Node's header object). */
export type HeaderLookup = (name: string) => string | undefined;

export interface TokenEntry {
  readonly digest: Buffer;
  readonly roles: ReadonlySet<Role>;
  /** Milliseconds since the epoch after which the token is refused; undefined: never. */
  readonly expiresAt: number | undefined;
  readonly name: string;
}

export class TokensFileError extends Error {
  override name = "TokensFileError";
}

const digest = (text: string) => createHash("sha256").update(text).digest();

/**
 * Parses a tokens file: one token per line, `TOKEN ROLES [expires=ISO-8601] [name=NAME]`, where
 * TOKEN is the token itself or `sha256:<hex>` of it (so the file need not hold the token), and
 * ROLES a comma-separated subset of read, write, admin. Blank lines and `#` comments are skipped.
 * Throws TokensFileError naming the line for anything else.
 */
export function parseTokensFile(text: string): TokenEntry[] {
  const entries: TokenEntry[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "") return;
    const where = `line ${i + 1}`;
    const [token, roleList, ...options] = line.split(/\s+/);
    if (!token || !roleList) throw new TokensFileError(`${where}: expected TOKEN ROLES [expires=ISO-8601] [name=NAME]`);
    let tokenDigest: Buffer;
    if (token.startsWith("sha256:")) {
      const hex = token.slice("sha256:".length);
      if (!/^[0-9a-f]{64}$/i.test(hex)) throw new TokensFileError(`${where}: sha256: must be followed by 64 hex digits`);
      tokenDigest = Buffer.from(hex, "hex");
    } else {
      if (token.length < 16) throw new TokensFileError(`${where}: a token must be at least 16 characters (make one with: openssl rand -hex 24)`);
      tokenDigest = digest(token);
    }
    const roles = new Set<Role>();
    for (const role of roleList.split(",")) {
      if (!ROLES.includes(role as Role)) throw new TokensFileError(`${where}: unknown role '${role}' (roles are ${ROLES.join(", ")})`);
      roles.add(role as Role);
    }
    let expiresAt: number | undefined;
    let name = `${where}`;
    for (const option of options) {
      const [key, value = ""] = option.split("=", 2);
      if (key === "expires") {
        expiresAt = Date.parse(value);
        if (Number.isNaN(expiresAt)) throw new TokensFileError(`${where}: expires must be an ISO-8601 time, got '${value}'`);
      } else if (key === "name" && /^[\w.@-]{1,64}$/.test(value)) {
        name = value;
      } else {
        throw new TokensFileError(`${where}: unknown option '${option}' (options are expires=ISO-8601 and name=NAME)`);
      }
    }
    entries.push({ digest: tokenDigest, roles, expiresAt, name });
  });
  return entries;
}

/** What a token grants: admin implies read and write. */
function grants(roles: ReadonlySet<Role>, needed: Role): boolean {
  return roles.has(needed) || roles.has("admin");
}

export interface CredentialsOptions {
  readonly clusterSecret: string;
  /** --tokens-file, if any. */
  readonly tokensFile?: string | undefined;
  /** --require-client-auth: the key API needs a token too. */
  readonly requireClientAuth: boolean;
  readonly now?: () => number;
}

export class Credentials {
  private readonly secretDigest: Buffer;
  private tokens: TokenEntry[] = [];
  private tokensMtimeMs = -1;
  private lastCheck = 0;
  private readonly now: () => number;

  constructor(private readonly options: CredentialsOptions) {
    this.secretDigest = digest(options.clusterSecret);
    this.now = options.now ?? Date.now;
    this.reloadTokens(true);
  }

  get requireClientAuth(): boolean {
    return this.options.requireClientAuth;
  }

  /** The caller carries the cluster secret (another node, or an operator who has it). */
  isInternal(header: HeaderLookup): boolean {
    const given = header(CLUSTER_SECRET_HEADER);
    if (given !== undefined && timingSafeEqual(digest(given), this.secretDigest)) return true;
    const bearer = bearerOf(header);
    return bearer !== undefined && timingSafeEqual(digest(bearer), this.secretDigest);
  }

  /** Throws Unauthenticated or PermissionDenied unless the caller may do what `needed` covers. */
  authorize(header: HeaderLookup, needed: Role, what: string): void {
    if (needed !== "admin" && !this.options.requireClientAuth) return;
    if (this.isInternal(header)) return;
    const bearer = bearerOf(header);
    if (bearer === undefined) {
      throw new ConnectError(
        `${what} needs credentials: send "Authorization: Bearer <token>" with a token that has the ${needed} role${needed === "admin" ? " (or the cluster secret)" : ""}`,
        Code.Unauthenticated,
      );
    }
    this.reloadTokens(false);
    const given = digest(bearer);
    let found: TokenEntry | undefined;
    for (const entry of this.tokens) if (timingSafeEqual(entry.digest, given)) found = entry;
    if (!found || (found.expiresAt !== undefined && found.expiresAt <= this.now())) {
      throw new ConnectError(`${what}: the bearer token is unknown or expired`, Code.Unauthenticated);
    }
    if (!grants(found.roles, needed)) {
      throw new ConnectError(`${what} needs the ${needed} role; token ${found.name} has ${[...found.roles].join(", ")}`, Code.PermissionDenied);
    }
  }

  /** Re-reads the tokens file when it changed (at most every 2 s); keeps the old tokens if the new file is invalid. */
  private reloadTokens(initial: boolean): void {
    const file = this.options.tokensFile;
    if (!file) return;
    const t = this.now();
    if (!initial && t - this.lastCheck < 2_000) return;
    this.lastCheck = t;
    let mtimeMs: number;
    try {
      mtimeMs = statSync(file).mtimeMs;
    } catch (err) {
      if (initial) throw new TokensFileError(`cannot read the tokens file ${file}: ${(err as Error).message}`);
      return;
    }
    if (mtimeMs === this.tokensMtimeMs) return;
    try {
      this.tokens = parseTokensFile(readFileSync(file, "utf8"));
      this.tokensMtimeMs = mtimeMs;
    } catch (err) {
      if (initial) throw err instanceof TokensFileError ? new TokensFileError(`${file}: ${err.message}`) : err;
      // A half-written or broken file: keep serving with the tokens already loaded.
    }
  }
}

function bearerOf(header: HeaderLookup): string | undefined {
  const value = header("authorization");
  const m = value === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(value);
  return m ? m[1] : undefined;
}

/** A HeaderLookup over a Node request's headers. */
export function nodeHeaders(headers: Record<string, string | string[] | undefined>): HeaderLookup {
  return (name) => {
    const v = headers[name];
    return typeof v === "string" ? v : undefined;
  };
}

/** A HeaderLookup over Connect's request `Headers`. */
export function connectHeaders(headers: Headers): HeaderLookup {
  return (name) => headers.get(name) ?? undefined;
}

/**
 * Whether a cluster secret is strong enough: long, and not made of a few characters repeated.
 * Returns why not, or undefined.
 */
export function weakSecretReason(secret: string): string | undefined {
  if (secret.length < 24) return `it is ${secret.length} characters; use at least 24 (e.g. openssl rand -hex 32)`;
  const counts = new Map<string, number>();
  for (const c of secret) counts.set(c, (counts.get(c) ?? 0) + 1);
  if (counts.size < 8) return `it uses only ${counts.size} distinct characters; use a random one (e.g. openssl rand -hex 32)`;
  const most = Math.max(...counts.values());
  if (most * 3 > secret.length) return "one character makes up more than a third of it; use a random one (e.g. openssl rand -hex 32)";
  return undefined;
}
