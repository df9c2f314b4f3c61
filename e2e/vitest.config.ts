// E2E suites: real containers, so files run one at a time (2-core machines, fixed resources per
// cluster) with generous timeouts. Ryuk (Testcontainers' reaper) is disabled because its image
// cannot be pulled here; the harness removes what it creates, also on failure.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 180_000,
    teardownTimeout: 120_000,
    env: {
      TESTCONTAINERS_RYUK_DISABLED: "true",
      // Published ports are bound on loopback; talk to them there, not through "localhost".
      TESTCONTAINERS_HOST_OVERRIDE: "127.0.0.1",
    },
  },
});
