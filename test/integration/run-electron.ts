// Runs the integration suite (test/integration/*.test.ts) in DESKTOP VS Code through @vscode/test-electron, for
// contributors' machines. The same suite runs in code-server via tools/test-integration.mjs.
//
//   node out/test/integration/run-electron.js
//   ATTEND_VSCODE_EXECUTABLE=/path/to/code   use this VS Code (no download); otherwise the latest stable is downloaded
//                                            into .vscode-test/ when the update server can be reached
//   ATTEND_VSCODE_VERSION=1.100.3            version to download (default: stable)
//   ATTEND_E2E_EXTENSION=<dir>               extension folder under test (default: the repo root, needs dist/)
// On Linux without a display run it under xvfb-run.
// Exit codes: 0 passed, 1 failed, 3 SKIPPED (no executable and no download possible): a skip is never a pass.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runTests } from '@vscode/test-electron';
import { repoRoot } from '../e2e/harness';
import { modelSettings, sampleWorkspace } from '../e2e/attend-setup';

export const SKIPPED = 3;

async function online(): Promise<boolean> {
  try {
    const res = await fetch('https://update.code.visualstudio.com/api/releases/stable', { signal: AbortSignal.timeout(5000) });
    return res.ok;
  } catch {
    return false;
  }
}

async function main(): Promise<number> {
  const root = repoRoot();
  const executable = process.env.ATTEND_VSCODE_EXECUTABLE;
  if (executable && !fs.existsSync(executable)) {
    console.error(`desktop VS Code: ATTEND_VSCODE_EXECUTABLE=${executable} does not exist`);
    return 1;
  }
  if (!executable && !(await online())) {
    console.log(
      'desktop VS Code: SKIPPED, not run: no ATTEND_VSCODE_EXECUTABLE and update.code.visualstudio.com cannot be reached to download one.',
    );
    return SKIPPED;
  }
  const extensionDir = process.env.ATTEND_E2E_EXTENSION ?? root;
  if (!fs.existsSync(path.join(extensionDir, 'dist', 'extension.js'))) {
    console.error(`desktop VS Code: ${extensionDir}/dist/extension.js missing: run node tools/build.mjs`);
    return 1;
  }
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-electron-'));
  const workspace = sampleWorkspace(tmp);
  const userData = path.join(tmp, 'user-data');
  fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
  const settings = {
    ...modelSettings(extensionDir).settings,
    'attend.maxNewTokens': 24,
    'workbench.startupEditor': 'none',
    'telemetry.telemetryLevel': 'off',
    'update.mode': 'none',
    'security.workspace.trust.enabled': false,
    'git.enabled': false,
  };
  fs.writeFileSync(path.join(userData, 'User', 'settings.json'), JSON.stringify(settings, null, 2));
  const resultsFile = path.join(root, 'test-results', 'integration', `electron-${Date.now()}.json`);
  fs.mkdirSync(path.dirname(resultsFile), { recursive: true });
  try {
    await runTests({
      ...(executable
        ? { vscodeExecutablePath: executable }
        : process.env.ATTEND_VSCODE_VERSION
          ? { version: process.env.ATTEND_VSCODE_VERSION }
          : {}),
      extensionDevelopmentPath: extensionDir,
      extensionTestsPath: path.join(__dirname, 'electron-index'),
      extensionTestsEnv: { ATTEND_TEST_RESULTS: resultsFile },
      launchArgs: [
        workspace,
        '--disable-extensions',
        '--disable-workspace-trust',
        `--user-data-dir=${userData}`,
        `--extensions-dir=${path.join(tmp, 'ext')}`,
      ],
    });
    console.log(`desktop VS Code: passed (results ${path.relative(root, resultsFile)})`);
    return 0;
  } catch (e) {
    console.error(`desktop VS Code: FAILED: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
