// Child process for the kill -9 tests, run as `node enqueue-until-killed.ts <dir> <concurrency> [keys]`.
// It enqueues hints round-robin over a few targets, keeping <concurrency> enqueues in flight, and
// prints one JSON line per enqueue that has resolved (i.e. was acknowledged as durable), until the
// parent SIGKILLs it. Without [keys] every enqueue has its own key; with it, enqueue n goes to key
// n % keys with the record token(n), merged by unionOfTokens, so most enqueues merge. Node runs this TypeScript directly (type stripping); the resolve hook maps the
// package's `./x.js` imports to the `./x.ts` sources so no build is needed.
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

const { HintStore } = await import("../hint-store.js");
const { recordFor } = await import("./temp-dirs.js");
const { token, unionOfTokens } = await import("./merges.js");

const [dir, concurrencyArg, keysArg] = process.argv.slice(2);
if (dir === undefined) {
  throw new Error("usage: enqueue-until-killed.ts <dir> [concurrency] [keys]");
}
const concurrency = Number(concurrencyArg ?? "4");
const keys = keysArg === undefined ? undefined : Number(keysArg);
const targets = ["node-a", "node-b", "node-c"];
const store = await HintStore.open(dir, { merge: unionOfTokens });
// A safety stop so a parent that failed to kill us cannot fill the disk.
const maxHints = 100_000;
let next = 0;

async function worker(): Promise<void> {
  while (next < maxHints) {
    const n = next++;
    const target = targets[n % targets.length]!;
    const key = keys === undefined ? `key-${n}` : `key-${n % keys}`;
    const hint = await store.enqueue(target, key, keys === undefined ? recordFor(key) : token(n));
    process.stdout.write(`${JSON.stringify({ id: hint.id, target, key, n, createdAt: hint.createdAt })}\n`);
  }
}

await Promise.all(Array.from({ length: concurrency }, () => worker()));
await store.close();
