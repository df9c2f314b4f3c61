// For the smoke tests: free local ports and running a Node program to completion.
import { spawn } from "node:child_process";
import { createServer } from "node:net";

function portIsFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once("error", () => done(false));
    server.listen(port, "127.0.0.1", () => server.close(() => done(true)));
  });
}

/** The first of `count` consecutive free ports (local-cluster.mjs numbers its nodes upwards). */
export async function freePortRun(count: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = await new Promise<number>((done, fail) => {
      const server = createServer();
      server.once("error", fail);
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as { port: number };
        server.close(() => done(port));
      });
    });
    if (base + count > 65535) continue;
    let free = true;
    for (let i = 1; i < count && free; i++) free = await portIsFree(base + i);
    if (free) return base;
  }
  throw new Error(`found no ${count} consecutive free ports`);
}

export function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [command, ...args], { stdio: ["ignore", "pipe", "pipe"], env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.once("error", fail);
    child.once("exit", (code) => done({ code, stdout, stderr }));
  });
}
