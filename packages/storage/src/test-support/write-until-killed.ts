// Child process for the kill -9 test, run as `node write-until-killed.ts <dir> <concurrency>`.
// Writes keys k0, k1, ... (value "v<i>") with sync: false, keeping <concurrency> writes in flight,
// and prints one line "<key>" per write that has resolved (was acknowledged), until the parent
// SIGKILLs it. Node runs this TypeScript directly (type stripping); the resolve hook maps the
// package's `./x.js` imports to the `./x.ts` sources so that no build of this package is needed.
import { registerHooks } from "node:module";

registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (error) {
      const notFound = (error as NodeJS.ErrnoException).code === "ERR_MODULE_NOT_FOUND";
      if (notFound && specifier.startsWith(".") && specifier.endsWith(".js")) {
        return nextResolve(`${specifier.slice(0, -".js".length)}.ts`, context);
      }
      throw error;
    }
  },
});

// Imported after the hook is registered (static imports would be resolved before it).
const { Storage } = await import("../storage.js");
const { update } = await import("@dynamo-ts/vclock");

const [dir, concurrencyArgument] = process.argv.slice(2);
if (dir === undefined) throw new Error("usage: write-until-killed.ts <dir> [concurrency]");
const concurrency = Number(concurrencyArgument ?? "16");

const storage = await Storage.open(dir, { sync: false });
const encoder = new TextEncoder();
let next = 0;

async function writer(): Promise<void> {
  for (;;) {
    const i = next++;
    const key = `k${i}`;
    await storage.update(key, (current) => update(current, new Map(), "child", encoder.encode(`v${i}`), i));
    process.stdout.write(`${key}\n`);
  }
}

await Promise.all(Array.from({ length: concurrency }, writer));
