#!/usr/bin/env node
import { run } from "./cli.js";

// First Ctrl-C: stop the current phase and print what was measured; second: exit now.
const interrupt = new AbortController();
process.on("SIGINT", () => {
  if (interrupt.signal.aborted) process.exit(130);
  process.stderr.write("\ndynamo-bench: interrupted; finishing the operations in flight (Ctrl-C again to quit now)\n");
  interrupt.abort();
});

run(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  errIsTty: process.stderr.isTTY === true,
  signal: interrupt.signal,
}).then((code) => {
  process.exitCode = code;
});
