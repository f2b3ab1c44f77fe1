// npm start: code-server (real VS Code in the browser) with Attend installed from this working tree and a sample
// workspace, on 127.0.0.1. Prints the URL; Ctrl+C stops it. After editing the extension, run `node tools/build.mjs`
// and reload the browser window (the extension is linked, not copied).
// Uses the built-in model when models/attend-default has one, else the generated fixture model (random answers).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(ROOT);

function run(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status || 1);
}

run('bash', ['tools/setup-code-server.sh']);
run('node', ['tools/build.mjs']);
if (!existsSync('out/test/e2e/harness.js') || !existsSync('out/test/e2e/attend-setup.js')) run('npx', ['tsc', '-p', 'tsconfig.json']);
if (!existsSync('models/attend-default/config.json') && !existsSync('test/fixtures/generated/tiny-llama/config.json'))
  run('node', ['out/tools/make-fixture.js']);

const require = createRequire(import.meta.url);
const harness = require(join(ROOT, 'out', 'test', 'e2e', 'harness.js'));
const { modelSettings, sampleWorkspace } = require(join(ROOT, 'out', 'test', 'e2e', 'attend-setup.js'));

const tmp = mkdtempSync(join(tmpdir(), 'attend-start-'));
const workspace = sampleWorkspace(tmp);
const model = modelSettings(ROOT);
const server = await harness.startCodeServer({
  workspace,
  extensionDir: ROOT,
  logName: 'start',
  startTimeoutMs: 60000,
  userSettings: { ...model.settings, 'workbench.colorTheme': 'Default Dark Modern' },
});
console.log(`
Attend in VS Code (code-server ${server.startupMs} ms to start):

    ${server.url}

  workspace  ${workspace} (a copy of test/e2e/fixtures/attend-workspace)
  model      ${model.builtIn ? `built-in (${model.dir})` : `${model.dir}: the generated TEST fixture; its answers are random text (models/attend-default is not there yet)`}
  log        ${server.logFile}

Open lighthouse.md, then run "Attend: Ask About Current File" or "Attend: Ask About Workspace" from the command
palette (F1). Ctrl+C stops the server.
`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await server.stop();
  rmSync(tmp, { recursive: true, force: true });
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
setInterval(() => undefined, 1 << 30);
