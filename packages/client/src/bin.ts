#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { run } from "./cli.js";

run(process.argv.slice(2), {
  out: (data) => process.stdout.write(data),
  err: (s) => process.stderr.write(s),
  outIsTty: process.stdout.isTTY === true,
  stdin: () => new Uint8Array(readFileSync(0)),
  env: process.env,
}).then((code) => {
  process.exitCode = code;
});
