// What `npm publish` would ship: packs @dynamo-ts/proto and @dynamo-ts/client into tarballs,
// installs them into an empty project (their third-party dependencies linked from this
// repository's node_modules: tests never reach a registry), and uses them from there the way
// a user would: import the SDK, type-check a consumer against the shipped declarations, run
// the `dynamo` bin. Catches a package that only works inside the workspace (a private or
// unpublishable dependency, a missing file, wrong `exports`/`types`/`bin`).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runProcess } from "./test-support/local-cluster.js";

const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const NPM = process.platform === "win32" ? "npm.cmd" : "npm";
const PACKAGES = ["proto", "client"] as const;

interface PackedFile {
  path: string;
}
interface Packed {
  name: string;
  filename: string;
  files: PackedFile[];
}

let project: string;
const packed = new Map<string, Packed>();

beforeAll(async () => {
  project = mkdtempSync(join(tmpdir(), "dynamo-package-"));
  // --ignore-scripts: pack what the build made (prepack would delete dist/ under the CLI tests
  // running beside this one).
  const ran = await runProcess(
    NPM,
    ["pack", "--json", "--ignore-scripts", "--pack-destination", project, ...PACKAGES.flatMap((p) => ["-w", `packages/${p}`])],
    {
      cwd: REPO_ROOT,
    },
  );
  expect(ran.stderr.includes("ERR!") ? ran.stderr : "").toBe("");
  expect(ran.code).toBe(0);
  for (const p of JSON.parse(ran.stdout.toString()) as Packed[]) packed.set(p.name, p);

  const modules = join(project, "node_modules");
  for (const name of PACKAGES) {
    const dir = join(modules, "@dynamo-ts", name);
    mkdirSync(dir, { recursive: true });
    const untar = await runProcess("tar", ["-xzf", join(project, packed.get(`@dynamo-ts/${name}`)!.filename), "-C", dir, "--strip-components=1"]);
    expect(untar.code).toBe(0);
  }
  for (const scope of ["@bufbuild", "@connectrpc", "@types"]) symlinkSync(join(REPO_ROOT, "node_modules", scope), join(modules, scope), "dir");
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
}, 120_000);

afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

describe("the published packages", () => {
  it("are publishable: neither is private, and the client depends on a published proto version", () => {
    const proto = JSON.parse(readFileSync(join(REPO_ROOT, "packages/proto/package.json"), "utf8")) as { private?: boolean; version: string };
    const client = JSON.parse(readFileSync(join(REPO_ROOT, "packages/client/package.json"), "utf8")) as {
      private?: boolean;
      dependencies: Record<string, string>;
    };
    expect(proto.private).toBeUndefined();
    expect(client.private).toBeUndefined();
    expect(client.dependencies["@dynamo-ts/proto"]).toBe(`^${proto.version}`);
  });

  it("ship their entry points, declarations and bin, and no tests", () => {
    const files = (name: string) => packed.get(name)!.files.map((f) => f.path);
    expect(files("@dynamo-ts/proto")).toEqual(expect.arrayContaining(["dist/index.js", "dist/index.d.ts", "dist/headers.js", "package.json", "README.md"]));
    expect(files("@dynamo-ts/client")).toEqual(
      expect.arrayContaining(["dist/index.js", "dist/index.d.ts", "dist/bin.js", "bin/dynamo.js", "package.json", "README.md"]),
    );
    for (const name of packed.keys()) expect(files(name).filter((f) => /\.test\.|test-support/.test(f))).toEqual([]);
  });

  it("import from an installed copy, not from the workspace", async () => {
    const script = [
      `import * as sdk from "@dynamo-ts/client";`,
      `import * as proto from "@dynamo-ts/proto";`,
      `import { leanUnaryTransport } from "@dynamo-ts/client/lean-transport";`,
      `console.log(JSON.stringify({`,
      `  sdk: ["DynamoClient", "DynamoError"].filter((n) => typeof sdk[n] === "function").concat(typeof leanUnaryTransport === "function" ? ["leanUnaryTransport"] : []),`,
      `  kv: proto.KVService.typeName,`,
      `  from: import.meta.resolve("@dynamo-ts/proto"),`,
      `}));`,
    ].join("\n");
    writeFileSync(join(project, "use.mjs"), script);
    const ran = await runProcess(process.execPath, ["use.mjs"], { cwd: project });
    expect(ran.stderr).toBe("");
    const out = JSON.parse(ran.stdout.toString()) as { sdk: string[]; kv: string; from: string };
    expect(out.sdk).toEqual(["DynamoClient", "DynamoError", "leanUnaryTransport"]);
    expect(out.kv).toBe("dynamo.v1.KVService");
    expect(fileURLToPath(out.from).startsWith(join(project, "node_modules"))).toBe(true);
  });

  it("type-check a strict consumer against the shipped declarations", async () => {
    writeFileSync(
      join(project, "consumer.ts"),
      [
        `import { DynamoClient, DynamoError } from "@dynamo-ts/client";`,
        `import { leanUnaryTransport } from "@dynamo-ts/client/lean-transport";`,
        `import type { Transport } from "@connectrpc/connect";`,
        `export const lean: (fallback: Transport, sessions: Parameters<typeof leanUnaryTransport>[1]) => Transport = leanUnaryTransport;`,
        `const client = new DynamoClient({ nodes: ["127.0.0.1:7001"] });`,
        `export async function read(key: string): Promise<string | undefined> {`,
        `  try {`,
        `    const got = await client.get(key);`,
        `    return got?.values.map((v) => new TextDecoder().decode(v)).join(",");`,
        `  } catch (err) {`,
        `    if (err instanceof DynamoError) return err.codeName;`,
        `    throw err;`,
        `  }`,
        `}`,
      ].join("\n"),
    );
    writeFileSync(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: { strict: true, noEmit: true, module: "nodenext", moduleResolution: "nodenext", target: "es2023", types: ["node"] },
        files: ["consumer.ts"],
      }),
    );
    const tsc = join(REPO_ROOT, "node_modules/typescript/bin/tsc");
    const ran = await runProcess(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: project });
    expect(ran.stdout.toString() + ran.stderr).toBe("");
    expect(ran.code).toBe(0);
  });

  it("install a working `dynamo` bin", async () => {
    const pkg = JSON.parse(readFileSync(join(project, "node_modules/@dynamo-ts/client/package.json"), "utf8")) as {
      version: string;
      bin: Record<string, string>;
    };
    const ran = await runProcess(process.execPath, [join(project, "node_modules/@dynamo-ts/client", pkg.bin.dynamo!), "--version"], { cwd: project });
    expect(ran.code).toBe(0);
    expect(ran.stdout.toString()).toContain(pkg.version);
  });
});
