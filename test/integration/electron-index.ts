// extensionTestsPath for @vscode/test-electron (desktop VS Code): runs the same mocha suite as the code-server
// runner, through the same in-host entry, and fails the run when a test fails or none ran.
import * as vscode from 'vscode';
import { run as runSuite } from '../e2e/in-host/entry';

export async function run(): Promise<void> {
  const opts: Parameters<typeof runSuite>[0] = { vscode, files: [__dirname] };
  if (process.env.ATTEND_TEST_RESULTS) opts.resultsFile = process.env.ATTEND_TEST_RESULTS;
  const r = await runSuite(opts);
  for (const f of r.failures) console.error(`  ✗ ${f.fullTitle}\n    ${f.stack ?? f.error}`);
  console.log(
    `\n  ${r.passed} passing (${r.durationMs}ms)${r.pending ? `\n  ${r.pending} pending` : ''}${r.failed ? `\n  ${r.failed} failing` : ''}\n`,
  );
  if (r.failed > 0) throw new Error(`${r.failed} integration test(s) failed`);
  if (r.passed === 0) throw new Error('no integration tests ran');
}
