import { defineConfig } from "vitest/config";

/** `npm run chaos:short`: the shortened chaos runs (tests/chaos/short.test.ts, and cluster.test.ts on three servers) on their own. */
export default defineConfig({
  test: {
    include: ["tests/chaos/**/*.test.ts"],
    testTimeout: 180_000,
    globalSetup: ["tests/global-setup.ts"],
  },
});
