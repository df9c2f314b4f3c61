import { defineConfig } from "vitest/config";

// cluster.test.ts and cli.test.ts start a real three-node cluster (scripts/local-cluster.mjs,
// from packages/node/dist): their timeouts are upper bounds, not timing assertions.
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
