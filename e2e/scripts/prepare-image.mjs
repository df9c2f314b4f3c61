#!/usr/bin/env node
// Before the e2e suites: when a Docker engine answers, (re)build the node image from the
// workspace's current dist/ (docker/build-image.sh is quick when nothing changed). Without
// Docker, say so and let the suites decide: they skip locally and fail on CI (CI=true).
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const docker = spawnSync("docker", ["info"], { stdio: "ignore" });
if (docker.error || docker.status !== 0) {
  console.warn("[e2e] no Docker engine answers `docker info`; not building the image (the suites will skip, or fail when CI=true)");
  process.exit(0);
}
const build = spawnSync("bash", [join(root, "docker", "build-image.sh")], { stdio: "inherit" });
process.exit(build.status ?? 1);
