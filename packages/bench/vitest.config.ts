import { defineConfig } from "vitest/config";

// The smoke test starts a real three-node cluster and runs the tool against it: give it room
// (upper bounds, not timing assertions).
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
