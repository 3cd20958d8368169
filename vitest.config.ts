import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    // The chaos runs and the compose deployment have their own commands (npm run chaos:short, test:deploy).
    exclude: [...configDefaults.exclude, "tests/chaos/**", "tests/deploy/**"],
    // Integration files each start their own nats-server; two cores run two at a time.
    fileParallelism: true,
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    globalSetup: ["tests/global-setup.ts"],
    reporters: ["default", "./tests/summary-reporter.ts"],
  },
});
