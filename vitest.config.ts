import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["services/*/test/**/*.test.ts", "tools/**/*.test.ts", "packages/*/test/**/*.test.ts"],
    globalSetup: ["tools/vitest-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
