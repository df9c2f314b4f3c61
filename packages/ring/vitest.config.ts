import { defineConfig } from "vitest/config";

// Property and fuzz tests run thousands of cases; on a loaded 2-core CI machine they can take
// longer than vitest's 5 s default. An upper bound against hangs, not a timing assertion.
export default defineConfig({
  test: {
    testTimeout: 60_000,
  },
});
