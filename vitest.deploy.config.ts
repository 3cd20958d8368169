import { defineConfig } from "vitest/config";

/**
 * `npm run test:deploy`: the compose deployment (tests/deploy/), after the rest of the suite and
 * alone, since building and running images takes both cores for minutes. Its engine half runs
 * where a Docker engine answers (`.ci/run` starts one: tools/docker-engine.sh).
 */
export default defineConfig({
  test: {
    include: ["tests/deploy/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 1_800_000,
    globalSetup: ["tests/global-setup.ts"],
    reporters: ["default", "./tests/summary-reporter.ts"],
  },
});
