#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { run } from "./cli.js";

run(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  stdin: () => new Uint8Array(readFileSync(0)),
  env: process.env,
}).then((code) => {
  process.exitCode = code;
});
