// Runs every test suite: type-check + compile, lint, then node's test runner over the unit tests.
// Usage: npm test [-- --only unit|integration|e2e]
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, rmSync } from 'node:fs';
import { join } from 'node:path';

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts });
  if (r.status !== 0) {
    console.error(`\n${cmd} ${args.join(' ')} failed (exit ${r.status})`);
    process.exit(r.status ?? 1);
  }
}

function findTests(dir) {
  const out = [];
  let entries = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries.sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...findTests(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;

rmSync('out', { recursive: true, force: true });
run('npx', ['tsc', '-p', 'tsconfig.json']);
run('npx', ['tsc', '-p', 'webview/tsconfig.json', '--noEmit']);
if (!only) {
  run('npx', ['eslint', '.']);
  run('npx', ['prettier', '--check', '.']);
}
run('node', ['out/tools/make-fixture.js']);

if (!only || only === 'unit') {
  const files = findTests('out/test/unit');
  if (files.length === 0) {
    console.error('no unit tests found');
    process.exit(1);
  }
  run('node', ['--test', '--test-concurrency=2', ...files]);
}
if (!only || only === 'integration' || only === 'e2e') {
  // Added by the integration issue: real VS Code through code-server (integration suite, browser e2e).
  const extra = 'tools/test-integration.mjs';
  let present = true;
  try {
    statSync(extra);
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
    present = false;
  }
  if (present) run('node', [extra, ...(only ? ['--only', only] : [])]);
}
