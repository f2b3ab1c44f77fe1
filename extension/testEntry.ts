// Test-only hook so integration tests can run inside the extension host of code-server, which has no
// --extensionTestsPath. Inert unless ATTEND_TEST_ENTRY is set. Call it at the end of activate():
//
//   import * as vscode from 'vscode';
//   import { maybeRunTestEntry } from './testEntry';
//   export function activate(context: vscode.ExtensionContext) {
//     ...
//     maybeRunTestEntry(vscode, context);
//   }
//
// ATTEND_TEST_ENTRY names a JS file (normally out/test/e2e/in-host/entry.js) exporting
// run({ vscode, context, resultsFile }); it runs after activation has returned, so the tests see the
// extension active. ATTEND_TEST_RESULTS names the JSON results file; if the entry cannot even be
// loaded, this hook writes a one-failure result there so the runner fails fast instead of timing out.
// See test/e2e/run-in-code-server.ts.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';

interface TestEntryModule {
  run(opts: { vscode: unknown; context: unknown; resultsFile?: string }): Promise<unknown>;
}

/** Returns true when a test run was scheduled (ATTEND_TEST_ENTRY set). */
export function maybeRunTestEntry(vscodeApi: unknown, context: unknown): boolean {
  const entry = process.env.ATTEND_TEST_ENTRY;
  if (!entry) return false;
  const resultsFile = process.env.ATTEND_TEST_RESULTS;
  setImmediate(() => {
    void (async () => {
      try {
        // createRequire keeps bundlers from trying to resolve the path at build time.
        const mod = createRequire(__filename)(entry) as TestEntryModule;
        const opts: { vscode: unknown; context: unknown; resultsFile?: string } = { vscode: vscodeApi, context };
        if (resultsFile) opts.resultsFile = resultsFile;
        await mod.run(opts);
      } catch (err) {
        const error = err instanceof Error ? (err.stack ?? err.message) : String(err);
        console.error(`[attend-test-entry] ${entry}: ${error}`);
        if (resultsFile) {
          const failure = { title: 'ATTEND_TEST_ENTRY', fullTitle: `loading ${entry}`, error };
          fs.writeFileSync(
            resultsFile,
            JSON.stringify({ passed: 0, failed: 1, pending: 0, total: 1, failures: [failure], tests: [] }, null, 2),
          );
        }
      }
    })();
  });
  return true;
}
