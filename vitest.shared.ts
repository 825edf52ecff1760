import { defineConfig } from "vitest/config";

// Every package's tests import sibling packages from source (the
// "@distcache/source" export condition) so a change is tested without a build.
export default defineConfig({
  ssr: { resolve: { conditions: ["@distcache/source"] } },
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
