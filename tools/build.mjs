// Builds the shipped bundles with esbuild:
//   dist/extension.js      extension host (node, cjs; `vscode` external)
//   dist/worker.js         engine child process (node, cjs)
//   dist/cli.js            `attend` command line (node, cjs)
//   dist/webview/main.js   answer panel (browser, iife)
// Native and WASM pieces cannot live inside a bundle, so they are copied next to it:
//   dist/tiktoken_bg.wasm                tiktoken's loader looks in its own __dirname first (= dist/ once bundled)
//   dist/node_modules/onnxruntime-node   kept external; Node resolves it from dist/ (JS + the native binding of the
//   dist/node_modules/onnxruntime-common target platforms only: all five would add ~290 MB to the .vsix)
// Usage: node tools/build.mjs [--production] [--watch] [--target=linux-x64[,darwin-arm64...] | --all-targets]
import * as esbuild from 'esbuild';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');
const args = process.argv.slice(2);
const production = args.includes('--production');
const watch = args.includes('--watch');
const ORT_BIN = join(ROOT, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6');

function targets() {
  if (args.includes('--all-targets')) {
    return readdirSync(ORT_BIN).flatMap((platform) => readdirSync(join(ORT_BIN, platform)).map((arch) => `${platform}-${arch}`));
  }
  const t = args.find((a) => a.startsWith('--target='));
  return t ? t.slice('--target='.length).split(',') : [`${process.platform}-${process.arch}`];
}

const common = {
  bundle: true,
  sourcemap: production ? false : 'linked',
  minify: production,
  logLevel: 'info',
  absWorkingDir: ROOT,
};

const nodeCommon = {
  ...common,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // The native binding is loaded by onnxruntime-node's own require of a computed path: keep the package whole.
  external: ['onnxruntime-node', 'onnxruntime-common'],
};

const builds = [
  { ...nodeCommon, entryPoints: { extension: 'extension/extension.ts' }, outdir: DIST, external: [...nodeCommon.external, 'vscode'] },
  { ...nodeCommon, entryPoints: { worker: 'engine/worker.ts', cli: 'engine/cli.ts' }, outdir: DIST },
  {
    ...common,
    entryPoints: { main: 'webview/main.ts' },
    outdir: join(DIST, 'webview'),
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
  },
];

function copyRuntimeFiles() {
  cpSync(join(ROOT, 'node_modules', 'tiktoken', 'tiktoken_bg.wasm'), join(DIST, 'tiktoken_bg.wasm'));
  // Codicons for the answer panel: the stylesheet and its font, served from dist/webview (the panel's resource root).
  mkdirSync(join(DIST, 'webview', 'codicons'), { recursive: true });
  for (const f of ['codicon.css', 'codicon.ttf'])
    cpSync(join(ROOT, 'node_modules', '@vscode', 'codicons', 'dist', f), join(DIST, 'webview', 'codicons', f));

  const ortSrc = join(ROOT, 'node_modules', 'onnxruntime-node');
  const ortDst = join(DIST, 'node_modules', 'onnxruntime-node');
  rmSync(ortDst, { recursive: true, force: true });
  mkdirSync(ortDst, { recursive: true });
  for (const f of ['package.json', 'LICENSE', 'README.md']) if (existsSync(join(ortSrc, f))) cpSync(join(ortSrc, f), join(ortDst, f));
  cpSync(join(ortSrc, 'dist'), join(ortDst, 'dist'), { recursive: true, filter: (p) => !p.endsWith('.map') && !p.endsWith('.d.ts') });
  const copied = [];
  for (const t of targets()) {
    const [platform, arch] = t.split('-');
    const from = join(ORT_BIN, platform, arch);
    if (!existsSync(from)) throw new Error(`onnxruntime-node has no binding for ${t} (looked in ${from})`);
    cpSync(from, join(ortDst, 'bin', 'napi-v6', platform, arch), { recursive: true });
    copied.push(t);
  }

  const commonSrc = join(ROOT, 'node_modules', 'onnxruntime-common');
  const commonDst = join(DIST, 'node_modules', 'onnxruntime-common');
  rmSync(commonDst, { recursive: true, force: true });
  mkdirSync(commonDst, { recursive: true });
  for (const f of ['package.json', 'LICENSE', 'README.md'])
    if (existsSync(join(commonSrc, f))) cpSync(join(commonSrc, f), join(commonDst, f));
  cpSync(join(commonSrc, 'dist', 'cjs'), join(commonDst, 'dist', 'cjs'), {
    recursive: true,
    filter: (p) => !p.endsWith('.map') && !p.endsWith('.d.ts'),
  });
  if (existsSync(join(commonSrc, 'dist', 'esm'))) {
    // package.json "exports" names the esm entry too; ship it so resolution never fails on a missing file.
    cpSync(join(commonSrc, 'dist', 'esm'), join(commonDst, 'dist', 'esm'), {
      recursive: true,
      filter: (p) => !p.endsWith('.map') && !p.endsWith('.d.ts'),
    });
  }
  return copied;
}

function size(p) {
  const s = statSync(p);
  if (!s.isDirectory()) return s.size;
  return readdirSync(p).reduce((n, f) => n + size(join(p, f)), 0);
}

if (!watch) rmSync(DIST, { recursive: true, force: true });
mkdirSync(DIST, { recursive: true });
if (watch) {
  const contexts = await Promise.all(builds.map((b) => esbuild.context(b)));
  copyRuntimeFiles();
  await Promise.all(contexts.map((c) => c.watch()));
  console.log('watching…');
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
  const copied = copyRuntimeFiles();
  const mb = (n) => `${(n / 1024 / 1024).toFixed(1)} MB`;
  console.log(`onnxruntime-node bindings: ${copied.join(', ')}; dist/ is ${mb(size(DIST))}`);
}
