// Tests Attend in real VS Code, as users get it (npm test calls this after the unit tests):
//   1. code-server (tools/setup-code-server.sh: Debian packages if missing, code-server cached in .code-server/)
//   2. the packaged extension: build --production, package the .vsix, unpack it (what "Install from VSIX" installs)
//   3. the integration suite (test/integration, mocha) inside code-server's extension host
//   4. the browser end-to-end test (test/e2e/attend.e2e.ts, playwright-core + Debian chromium)
//   5. the same integration suite in desktop VS Code (@vscode/test-electron) when ATTEND_VSCODE_EXECUTABLE is set or
//      a download is possible; otherwise reported as SKIPPED, never as passed
// Fails when any suite fails or runs no test; ends with mocha-style totals.
//
// Usage: node tools/test-integration.mjs [--only integration|e2e] [--no-package]
//   --no-package  install the working tree's dist/ (node tools/build.mjs) instead of the packaged .vsix
//   The built-in model (models/attend-default) is used when present, else the generated fixture model.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(ROOT);
const args = process.argv.slice(2);
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
const usePackage = !args.includes('--no-package');
const t0 = Date.now();
const stamp = `${Date.now()}-${process.pid}`;
const RUN = join(ROOT, 'test-results', 'runs', stamp);
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;

function step(title) {
  console.log(`\n── ${title} ${'─'.repeat(Math.max(0, 70 - title.length))}`);
}

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { stdio: 'inherit', ...opts });
  if (r.status !== 0) {
    console.error(`\n${cmd} ${argv.join(' ')} failed (exit ${r.status})`);
    process.exit(r.status || 1);
  }
}

/** Runs a command, echoing its output, and returns the exit code and the output. */
function runTee(cmd, argv, env = {}) {
  return new Promise((done) => {
    const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      process.stdout.write(d);
    });
    child.stderr.on('data', (d) => {
      out += d;
      process.stderr.write(d);
    });
    child.on('close', (code) => done({ code: code ?? 1, out }));
  });
}

function counts(out) {
  const n = (re) => Number((out.match(re) ?? [])[1] ?? 0);
  return { passing: n(/^\s*(\d+) passing/m), failing: n(/^\s*(\d+) failing/m), pending: n(/^\s*(\d+) pending/m) };
}

/**
 * Several checkouts' test runs may share this folder: the build + package step writes dist/ and the .vsix at fixed
 * paths, so it runs under a lock (a directory: mkdir is atomic). A lock older than 10 minutes is stale.
 */
async function withLock(name, fn) {
  const lock = join(ROOT, 'test-results', `${name}.lock`);
  mkdirSync(dirname(lock), { recursive: true });
  const deadline = Date.now() + 5 * 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      try {
        if (Date.now() - statSync(lock).mtimeMs > 10 * 60_000) rmdirSync(lock);
      } catch {
        /* gone meanwhile */
      }
      if (Date.now() > deadline) throw new Error(`${lock} held for over 5 minutes`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

// 1. code-server and Chromium ---------------------------------------------------------------------------------------
step('code-server');
run('bash', ['tools/setup-code-server.sh']);

// 2. compiled tests, fixture model, the packaged extension -----------------------------------------------------------
step('build');
if (!existsSync('out/test/integration/ask.test.js') || !existsSync('out/test/e2e/in-host/entry.js'))
  run('npx', ['tsc', '-p', 'tsconfig.json']);
const builtIn = existsSync('models/attend-default/config.json');
if (!builtIn && !existsSync('test/fixtures/generated/tiny-llama/config.json')) run('node', ['out/tools/make-fixture.js']);

mkdirSync(RUN, { recursive: true });
// Private copies of the compiled tests and the fixture model: other runs in this checkout delete out/ and rewrite the
// fixtures while we use them. (Below test-results/, module resolution still finds the repo's node_modules.)
cpSync('out', join(RUN, 'out'), { recursive: true });
const fixtureModel = join(RUN, 'fixture-model');
if (!builtIn) cpSync('test/fixtures/generated/tiny-llama', fixtureModel, { recursive: true });

let extensionDir;
await withLock('build', async () => {
  if (!usePackage) {
    run('node', ['tools/build.mjs']);
    extensionDir = join(RUN, 'extension');
    for (const p of ['package.json', 'dist', 'media', 'README.md', 'CHANGELOG.md', 'LICENSE', 'models'])
      if (existsSync(p)) cpSync(p, join(extensionDir, p), { recursive: true });
    return;
  }
  const tb = Date.now();
  run('node', ['tools/build.mjs', '--production']);
  run('node', ['tools/package.mjs']);
  const { name, version } = JSON.parse(readFileSync('package.json', 'utf8'));
  const vsix = `${name}-${process.platform}-${process.arch}-${version}.vsix`;
  const unpacked = join(RUN, 'vsix');
  const r = spawnSync('unzip', ['-q', '-o', vsix, '-d', unpacked], { stdio: 'inherit' });
  if (r.status !== 0) run('python3', ['-m', 'zipfile', '-e', vsix, unpacked]);
  extensionDir = join(unpacked, 'extension');
  console.log(`packaged ${vsix} and unpacked it to ${relative(ROOT, extensionDir)} in ${secs(Date.now() - tb)}`);
});

const require = createRequire(import.meta.url);
const out = join(RUN, 'out');
const env = { ATTEND_E2E_EXTENSION: extensionDir, ...(builtIn ? {} : { ATTEND_FIXTURE_MODEL: fixtureModel }) };
if (!builtIn) process.env.ATTEND_FIXTURE_MODEL = fixtureModel;
const { modelSettings, sampleWorkspace } = require(join(out, 'test', 'e2e', 'attend-setup.js'));
const model = modelSettings(extensionDir);
console.log(
  model.builtIn
    ? `model: the built-in one (${relative(ROOT, model.dir)})`
    : `model: the generated fixture (models/attend-default is not there yet): answers are random text, checks are structural`,
);

const results = [];

// 3. integration suite in code-server ---------------------------------------------------------------------------------
if (!only || only === 'integration') {
  step('integration suite in code-server (real extension host)');
  const workspace = sampleWorkspace(join(RUN, 'integration-ws'));
  const settings = { ...model.settings, 'attend.maxNewTokens': 24 };
  const ti = Date.now();
  const r = await runTee(
    'node',
    [
      join(out, 'test', 'e2e', 'run-in-code-server.js'),
      '--extension',
      extensionDir,
      '--workspace',
      workspace,
      '--tests',
      join(out, 'test', 'integration'),
      '--activate',
      'Attend: Clear Highlights',
      '--timeout',
      '420',
      ...Object.entries(settings).flatMap(([k, v]) => ['--setting', `${k}=${JSON.stringify(v)}`]),
    ],
    env,
  );
  results.push({ name: 'integration (code-server)', code: r.code, ms: Date.now() - ti, ...counts(r.out) });
}

// 4. browser end to end -------------------------------------------------------------------------------------------------
if (!only || only === 'e2e') {
  step('browser end to end (Chromium + code-server)');
  const te = Date.now();
  const r = await runTee('npx', ['mocha', '--timeout', '180000', join(out, 'test', 'e2e', 'attend.e2e.js')], env);
  results.push({ name: 'browser e2e', code: r.code, ms: Date.now() - te, ...counts(r.out) });
}

// 5. desktop VS Code ----------------------------------------------------------------------------------------------------
if (!only || only === 'integration') {
  step('integration suite in desktop VS Code (@vscode/test-electron)');
  const td = Date.now();
  const r = await runTee('node', [join(out, 'test', 'integration', 'run-electron.js')], env);
  if (r.code === 3) results.push({ name: 'desktop VS Code', skipped: true, ms: Date.now() - td });
  else results.push({ name: 'desktop VS Code', code: r.code, ms: Date.now() - td, ...counts(r.out) });
}

// Summary ---------------------------------------------------------------------------------------------------------------
step('summary');
let failed = false;
let passing = 0;
let failing = 0;
for (const s of results) {
  if (s.skipped) {
    console.log(`  ${s.name}: SKIPPED (not run; set ATTEND_VSCODE_EXECUTABLE or run where VS Code can be downloaded)`);
    continue;
  }
  passing += s.passing;
  failing += s.failing;
  const bad = s.code !== 0 || s.failing > 0 || s.passing === 0;
  failed ||= bad;
  const why = s.passing === 0 && s.code === 0 ? ' (no test ran)' : s.code !== 0 && s.failing === 0 ? ` (exit ${s.code})` : '';
  console.log(`  ${bad ? '✗' : '✔'} ${s.name}: ${s.passing} passing, ${s.failing} failing${why} (${secs(s.ms)})`);
}
console.log(`\n  ${passing} passing (${secs(Date.now() - t0)} in all)`);
if (failing) console.log(`  ${failing} failing`);
const ok = !failed && results.some((s) => !s.skipped);
// The run folder (unpacked extension, test copies) is kept only when something failed.
if (ok) rmSync(RUN, { recursive: true, force: true });
console.log(`  artefacts: test-results/ (screenshots/, code-server/, integration/${ok ? '' : `, runs/${stamp}/`})\n`);
process.exit(ok ? 0 : 1);
