// Packages the built dist/ as a platform-specific .vsix (the native onnxruntime-node binding in dist/ is for one
// platform). Run after `node tools/build.mjs --production [--target=...]`; npm run package does both.
// Usage: node tools/package.mjs [--target=linux-x64]
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const t = process.argv.find((a) => a.startsWith('--target='));
const target = t ? t.slice('--target='.length) : `${process.platform}-${process.arch}`;
const bindings = join('dist', 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6');
const built = readdirSync(bindings).flatMap((p) => readdirSync(join(bindings, p)).map((a) => `${p}-${a}`));
if (!built.includes(target)) {
  console.error(`dist/ has onnxruntime-node bindings for ${built.join(', ')}, not ${target}: run node tools/build.mjs --target=${target}`);
  process.exit(1);
}
const { name, version } = JSON.parse(readFileSync('package.json', 'utf8'));
const out = `${name}-${target}-${version}.vsix`;
// Dependencies are bundled into dist/, so vsce must not collect node_modules itself. There is no public repository
// URL yet, so relative README links stay as written instead of being rewritten to one.
const r = spawnSync(
  'npx',
  ['vsce', 'package', '--no-dependencies', '--allow-missing-repository', '--no-rewrite-relative-links', '--target', target, '--out', out],
  { stdio: 'inherit' },
);
if (r.status !== 0) process.exit(r.status ?? 1);
console.log(`${out}: ${(statSync(out).size / 1024 / 1024).toFixed(1)} MB`);
