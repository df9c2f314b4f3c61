import { createRequire } from "node:module";

/** The version of @dynamo-ts/bench (from its package.json). */
export const VERSION: string = (createRequire(import.meta.url)("../package.json") as { version: string }).version;
