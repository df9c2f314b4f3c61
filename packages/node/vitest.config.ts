import { defineConfig } from "vitest/config";

// Integration tests start, kill and restart real node processes and wait for the cluster to
// converge: give them room (these are upper bounds, not timing assertions).
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
