import { defineConfig } from "vitest/config";

/** `npm run chaos:short`: the shortened chaos run (tests/chaos/short.test.ts) on its own. */
export default defineConfig({
  test: {
    include: ["tests/chaos/**/*.test.ts"],
    testTimeout: 180_000,
    globalSetup: ["tests/global-setup.ts"],
  },
});
