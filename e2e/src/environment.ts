// Whether the e2e suites can run here: a reachable container engine and a node image built
// from the current workspace. Locally a missing prerequisite skips the suites with the reason;
// with CI=true it fails them, so a CI machine without Docker can never pass by skipping.
import { execFile } from "node:child_process";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe } from "vitest";
import { getContainerRuntimeClient, ImageName, type ContainerRuntimeClient } from "testcontainers";

/** The image every suite runs; docker/build-image.sh builds it. */
export const NODE_IMAGE = process.env.DYNAMO_E2E_IMAGE ?? "dynamo-ts/node:local";

export type Environment = { readonly ready: true; readonly docker: ContainerRuntimeClient } | { readonly ready: false; readonly reason: string };

const DETECT_TIMEOUT_MS = 20_000;
/** Set by docker/build-image.sh: digest of the Dockerfile and the staged bundle. */
const BUILD_INPUTS_LABEL = "org.dynamo-ts.build-inputs";
const STAGE_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../docker/stage-bundle.mjs");

export class MissingPrerequisiteError extends Error {
  override name = "MissingPrerequisiteError";
}

async function detect(): Promise<Environment> {
  let docker: ContainerRuntimeClient;
  try {
    docker = await withTimeout(getContainerRuntimeClient(), DETECT_TIMEOUT_MS, "looking for a container engine");
  } catch (error) {
    return { ready: false, reason: `no usable Docker engine (${firstLine(error)}); run .ci/docker.sh or start dockerd` };
  }
  try {
    if (!(await docker.image.exists(ImageName.fromString(NODE_IMAGE)))) {
      return { ready: false, reason: `image ${NODE_IMAGE} is not built; run docker/build-image.sh (after npx nx run-many -t build)` };
    }
  } catch (error) {
    return { ready: false, reason: `cannot inspect image ${NODE_IMAGE}: ${firstLine(error)}` };
  }
  const stale = await staleImageReason(docker);
  if (stale !== undefined) {
    if (process.env.DYNAMO_E2E_ALLOW_STALE_IMAGE !== "true") return { ready: false, reason: stale };
    console.warn(`[e2e] ${stale}; running anyway (DYNAMO_E2E_ALLOW_STALE_IMAGE=true)`);
  }
  return { ready: true, docker };
}

/**
 * Why the image does not package the current workspace, if it does not: the digest
 * build-image.sh put on it against the digest staging the workspace now would give.
 */
async function staleImageReason(docker: ContainerRuntimeClient): Promise<string | undefined> {
  const image = await docker.container.dockerode.getImage(NODE_IMAGE).inspect();
  const built = image.Config?.Labels?.[BUILD_INPUTS_LABEL];
  if (!built) {
    console.warn(`[e2e] ${NODE_IMAGE} has no ${BUILD_INPUTS_LABEL} label (not built by docker/build-image.sh): cannot tell whether it is current`);
    return undefined;
  }
  let current: string;
  try {
    current = (await promisify(execFile)(process.execPath, [STAGE_SCRIPT, "--digest"], { timeout: 60_000 })).stdout.trim();
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    return `cannot stage the workspace to compare it with ${NODE_IMAGE}: ${stderr || firstLine(error)}`;
  }
  if (current === built) return undefined;
  return `${NODE_IMAGE} is stale: it was built from other files than the workspace's dist/ now holds (rebuild: docker/build-image.sh)`;
}

let detected: Promise<Environment> | undefined;

/** Detected once per test file. */
export function environment(): Promise<Environment> {
  detected ??= detect();
  return detected;
}

/**
 * `describe` for a suite that needs Docker and the node image (and whatever else
 * `missingPrerequisite` names, when set): runs it, skips it with the reason, or (CI=true)
 * throws so the file fails.
 */
export async function describeWithDocker(name: string, body: () => void, missingPrerequisite?: string): Promise<void> {
  const env = await environment();
  const reason = env.ready ? missingPrerequisite : env.reason;
  if (reason === undefined) {
    describe(name, body);
    return;
  }
  if (process.env.CI === "true") {
    throw new MissingPrerequisiteError(`e2e suite "${name}" cannot run on CI: ${reason}`);
  }
  console.warn(`[e2e] skipping "${name}": ${reason}`);
  describe.skip(`${name} (skipped: ${reason})`, body);
}

/** The engine client; only valid inside a suite declared with describeWithDocker. */
export async function dockerClient(): Promise<ContainerRuntimeClient> {
  const env = await environment();
  if (!env.ready) throw new MissingPrerequisiteError(env.reason);
  return env.docker;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Whether a process with this pid exists (EPERM: it exists, under another user). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

export function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0] ?? text;
}
