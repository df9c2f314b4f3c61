import { defineConfig } from "vitest/config";

// Two projects: `unit` runs in-process tests beside their sources (no node processes, no
// dist/); `integration` (src/integration) starts, kills and restarts real node processes from
// dist/ (so it needs `npm run build` first; nx's test targets depend on it) and waits for the
// cluster to converge. Timeouts are upper bounds against hangs (property and fuzz tests run long on
// a loaded 2-core machine), not timing assertions.
export default defineConfig({
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["src/**/*.test.ts", "dashboard/**/*.test.ts"],
          exclude: ["src/integration/**"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      { extends: true, test: { name: "integration", include: ["src/integration/**/*.test.ts"], testTimeout: 60_000, hookTimeout: 60_000 } },
    ],
  },
});
