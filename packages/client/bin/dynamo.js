#!/usr/bin/env node
// The `dynamo` command. It only loads the built CLI (dist/bin.js): being a file of its own,
// present before anything is built, npm links it into node_modules/.bin when it installs the
// workspace (npm skips a bin whose file does not exist yet), so `npx dynamo` works from the
// repository root after `npm ci` and a build.
try {
  await import("../dist/bin.js");
} catch (err) {
  if (err?.code !== "ERR_MODULE_NOT_FOUND" || !String(err.message).includes("dist/bin.js")) throw err;
  process.stderr.write("dynamo: the CLI is not built yet: run `npm run build` (in the repository: npx nx run @dynamo-ts/client:build)\n");
  process.exitCode = 1;
}
