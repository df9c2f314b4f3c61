#!/usr/bin/env node
// Stages the runtime files of the dynamo-ts node and CLI into docker/bundle/ (the only part of
// the repository the image build sees, see /.dockerignore):
//
//   bundle/app/node_modules/@dynamo-ts/<pkg>/{package.json,dist/,bin/} workspace packages, built
//   bundle/app/node_modules/<dep>/...                                 production dependencies
//   bundle/app/bin/<command>                                         launchers for package "bin"s
//   bundle/app/healthcheck.mjs, bundle/data/                          image plumbing
//   bundle/Dockerfile          docker/Dockerfile's runtime stage, reading the bundle from the context
//
// Everything is a real copy (workspace symlinks are resolved), dev dependencies are never
// reached because the walk starts at the runtime packages and follows only `dependencies`,
// `optionalDependencies` and installed `peerDependencies`. Type declarations, source maps and
// native prebuilds for other platforms are left out.
//
// The digest of the build inputs (every staged file and bundle/Dockerfile) goes to <out>/digest;
// build-image.sh labels the image with it so the e2e suites can tell a stale image.
//
// Usage: node docker/stage-bundle.mjs [--out DIR]   stages, prints a one-line summary
//        node docker/stage-bundle.mjs --digest      prints only the digest the workspace would get

import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const dockerDir = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(dockerDir, "..");
/** The packages the image runs; everything else is reached through their dependencies. */
const RUNTIME_ROOTS = ["@dynamo-ts/node", "@dynamo-ts/client"];
/** The native prebuild directory this image can load (node-gyp-build looks up prebuilds/<platform>-<arch>). */
const TARGET_PREBUILD = "linux-x64";
/** Commands on the image's PATH, besides any `bin` the runtime packages declare. */
const COMMANDS = { dynamo: { packageName: "@dynamo-ts/client", script: "dist/cli.js" } };
const OMITTED_FILE = /(\.d\.[cm]?ts|\.map|\.tsbuildinfo)$/;
/** Where docker/Dockerfile's build stage stages the bundle (WORKDIR /src, default --out). */
const SOURCE_BUILD_BUNDLE = "/src/docker/bundle/";

class StageError extends Error {
  constructor(message) {
    super(message);
    this.name = "StageError";
  }
}

function parseArgs(argv) {
  let out = path.join(dockerDir, "bundle");
  let digestOnly = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--out" && argv[i + 1]) out = path.resolve(argv[++i]);
    else if (argv[i] === "--digest") digestOnly = true;
    else throw new StageError(`unknown argument ${argv[i]} (usage: stage-bundle.mjs [--out DIR] [--digest])`);
  }
  return { out, digestOnly };
}

function readManifest(dir) {
  return JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
}

/** Workspace packages by real directory, from the root manifest's `workspaces`. */
function workspacePackages() {
  const root = readManifest(repoRoot);
  const byDir = new Map();
  for (const rel of root.workspaces ?? []) {
    const dir = path.join(repoRoot, rel);
    if (fs.existsSync(path.join(dir, "package.json"))) byDir.set(fs.realpathSync(dir), readManifest(dir).name);
  }
  return byDir;
}

/** Node's lookup: the nearest node_modules/<name> walking up from `fromDir`. */
function findInstalled(name, fromDir) {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "node_modules", name);
    if (fs.existsSync(path.join(candidate, "package.json"))) return candidate;
    if (dir === repoRoot || dir === path.dirname(dir)) return undefined;
  }
}

function copyTree(from, to, { skipTopLevel = new Set() } = {}) {
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    if (skipTopLevel.has(entry.name)) continue;
    const src = path.join(from, entry.name);
    const dst = path.join(to, entry.name);
    const stat = fs.statSync(src); // follows symlinks: the bundle holds real files only
    if (stat.isDirectory()) copyTree(src, dst);
    else if (!OMITTED_FILE.test(entry.name)) fs.copyFileSync(src, dst);
  }
}

function stagePackage(realDir, stageDir, workspaceName) {
  if (workspaceName) {
    const dist = path.join(realDir, "dist");
    if (!fs.existsSync(dist)) {
      throw new StageError(`${workspaceName} has no dist/: build first (npx nx run-many -t build)`);
    }
    fs.mkdirSync(stageDir, { recursive: true });
    fs.copyFileSync(path.join(realDir, "package.json"), path.join(stageDir, "package.json"));
    copyTree(dist, path.join(stageDir, "dist"));
    // A bin launcher kept outside dist/ so that npm can link it before anything is built.
    const bin = path.join(realDir, "bin");
    if (fs.existsSync(bin)) copyTree(bin, path.join(stageDir, "bin"));
    return;
  }
  copyTree(realDir, stageDir, { skipTopLevel: new Set(["node_modules", "prebuilds"]) });
  const prebuilds = path.join(realDir, "prebuilds", TARGET_PREBUILD);
  if (fs.existsSync(prebuilds)) copyTree(prebuilds, path.join(stageDir, "prebuilds", TARGET_PREBUILD));
}

/**
 * A launcher per `bin` entry. Both base images have node at /usr/local/bin/node but the local
 * one has no /usr/bin/env, so the launcher names node directly and hands argv[1] to the real
 * script: a script that checks whether it is the main module still sees itself there.
 */
function writeLaunchers(binDir, manifest, stagedPackageDir, appDir) {
  const bins = typeof manifest.bin === "string" ? { [manifest.name.split("/").pop()]: manifest.bin } : { ...manifest.bin };
  for (const [command, { packageName, script }] of Object.entries(COMMANDS)) {
    if (packageName === manifest.name && !(command in bins)) bins[command] = script;
  }
  const written = [];
  for (const [command, script] of Object.entries(bins)) {
    const target = path.join(stagedPackageDir, script);
    if (!fs.existsSync(target)) throw new StageError(`${manifest.name} bin "${command}" points at missing ${script}`);
    const targetInImage = "/" + path.relative(path.dirname(appDir), target).split(path.sep).join("/");
    fs.mkdirSync(binDir, { recursive: true });
    fs.writeFileSync(
      path.join(binDir, command),
      `#!/usr/local/bin/node\n// ${command}: runs ${targetInImage} (${manifest.name})\n` +
        `process.argv[1] = ${JSON.stringify(targetInImage)};\nimport(process.argv[1]);\n`,
      { mode: 0o755 },
    );
    written.push(`${command} -> ${targetInImage}`);
  }
  return written;
}

function stage(out) {
  const appDir = path.join(out, "app");
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(appDir, { recursive: true });
  fs.mkdirSync(path.join(out, "data"));

  const workspaces = workspacePackages();
  const workspaceDirs = [...workspaces.keys()];
  const staged = new Map(); // real dir -> stage dir
  const queue = [];

  /** Where a package found at `installedDir` lives in the bundle, mirroring node_modules nesting. */
  const stagePathOf = (installedDir) => {
    const real = fs.realpathSync(installedDir);
    const workspaceName = workspaces.get(real);
    if (workspaceName) return { real, stageDir: path.join(appDir, "node_modules", workspaceName), workspaceName };
    if (installedDir.startsWith(path.join(repoRoot, "node_modules") + path.sep)) {
      return { real, stageDir: path.join(appDir, path.relative(repoRoot, installedDir)) };
    }
    const owner = workspaceDirs.find((dir) => installedDir.startsWith(dir + path.sep));
    if (owner) {
      return { real, stageDir: path.join(appDir, "node_modules", workspaces.get(owner), path.relative(owner, installedDir)) };
    }
    throw new StageError(`cannot place ${installedDir} in the bundle (outside the repository's node_modules)`);
  };

  const enqueue = (name, fromDir, requiredBy, optional) => {
    const installed = findInstalled(name, fromDir);
    if (!installed) {
      if (optional) return;
      throw new StageError(`${requiredBy} needs ${name}, which is not installed (run npm install at the root)`);
    }
    const target = stagePathOf(installed);
    if (staged.has(target.real)) return;
    staged.set(target.real, target.stageDir);
    queue.push(target);
  };

  for (const root of RUNTIME_ROOTS) enqueue(root, repoRoot, "the image", false);
  const launchers = [];
  while (queue.length > 0) {
    const { real, stageDir, workspaceName } = queue.shift();
    stagePackage(real, stageDir, workspaceName);
    const manifest = readManifest(real);
    if (workspaceName && RUNTIME_ROOTS.includes(workspaceName)) {
      launchers.push(...writeLaunchers(path.join(appDir, "bin"), manifest, stageDir, appDir));
    }
    for (const name of Object.keys(manifest.dependencies ?? {})) enqueue(name, real, manifest.name, false);
    for (const name of Object.keys(manifest.optionalDependencies ?? {})) enqueue(name, real, manifest.name, true);
    for (const name of Object.keys(manifest.peerDependencies ?? {})) {
      enqueue(name, real, manifest.name, manifest.peerDependenciesMeta?.[name]?.optional === true);
    }
  }

  fs.copyFileSync(path.join(dockerDir, "healthcheck.mjs"), path.join(appDir, "healthcheck.mjs"));
  const main = path.join(appDir, "node_modules", "@dynamo-ts", "node", "dist", "main.js");
  if (!fs.existsSync(main)) throw new StageError(`the node entry point is missing: ${path.relative(repoRoot, main)}`);

  const dockerfile = prebuiltDockerfile();
  fs.writeFileSync(path.join(out, "Dockerfile"), dockerfile);
  const digest = buildInputDigest(out, dockerfile);
  fs.writeFileSync(path.join(out, "digest"), digest + "\n");
  const workspaceCount = [...staged.keys()].filter((dir) => workspaces.has(dir)).length;
  return {
    digest,
    summary:
      `stage-bundle: ${path.relative(repoRoot, out)}: ${workspaceCount} workspace packages, ` +
      `${staged.size - workspaceCount} dependencies, ${(dirSize(out) / 1e6).toFixed(1)} MB, digest ${digest.slice(0, 12)}` +
      (launchers.length > 0 ? `; commands: ${launchers.join(", ")}` : ""),
  };
}

/**
 * The Dockerfile build-image.sh builds: docker/Dockerfile's runtime stage (its last FROM to the
 * end, after the global ARGs it uses) with the COPY instructions that take the bundle from the
 * source build stage reading it from the build context instead. One runtime stage, two builds:
 * the legacy builder would run the source build stage of docker/Dockerfile too.
 */
function prebuiltDockerfile() {
  const lines = fs.readFileSync(path.join(dockerDir, "Dockerfile"), "utf8").split("\n");
  const froms = lines.flatMap((line, i) => (/^FROM\s/i.test(line) ? [i] : []));
  if (froms.length === 0) throw new StageError("docker/Dockerfile has no FROM line");
  const stage = lines.slice(froms.at(-1));
  let copies = 0;
  const rewritten = stage.map((line) => {
    if (!/^COPY\s.*--from=build\s/i.test(line)) return line;
    copies++;
    return line.replace(/\s--from=build(?=\s)/, "").replaceAll(SOURCE_BUILD_BUNDLE, "docker/bundle/");
  });
  if (copies !== 2 || rewritten.some((line) => line.includes(SOURCE_BUILD_BUNDLE) || /--from=/.test(line))) {
    throw new StageError(`docker/Dockerfile's runtime stage must take the bundle from ${SOURCE_BUILD_BUNDLE} with two COPY --from=build`);
  }
  const text = rewritten.join("\n");
  const args = lines.slice(0, froms[0]).filter((line) => {
    const name = /^ARG\s+([A-Za-z_][A-Za-z0-9_]*)/i.exec(line)?.[1];
    return name !== undefined && text.includes(`\${${name}}`);
  });
  return (
    "# Generated by docker/stage-bundle.mjs from docker/Dockerfile (its runtime stage): do not edit.\n" +
    "# Built by docker/build-image.sh with the repository root as context.\n" +
    [...args, "", text].join("\n")
  );
}

/** sha256 over the Dockerfile and every staged file (path and content), in a stable order. */
function buildInputDigest(out, dockerfile) {
  const hash = createHash("sha256");
  hash.update("Dockerfile\0").update(dockerfile).update("\0");
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        hash.update(`${path.relative(out, full)}/\0`);
        walk(full);
      } else {
        hash.update(`${path.relative(out, full)}\0`).update(fs.readFileSync(full)).update("\0");
      }
    }
  };
  walk(path.join(out, "app"));
  return hash.digest("hex");
}

function dirSize(dir) {
  let total = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += dirSize(full);
    else if (entry.isFile()) total += fs.statSync(full).size;
  }
  return total;
}

try {
  const { out, digestOnly } = parseArgs(process.argv.slice(2));
  if (digestOnly) {
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "dynamo-bundle-"));
    try {
      console.log(stage(path.join(scratch, "bundle")).digest);
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  } else {
    console.log(stage(out).summary);
  }
} catch (error) {
  console.error(`stage-bundle: ${error instanceof StageError ? error.message : error.stack}`);
  process.exit(1);
}
