import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { commands, formatTable, main, type CliContext } from '../../engine/cli';
import { loadTokenizer } from '../../engine/tokenizer';
import { fixturePath } from '../../tools/make-fixture';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], cwd: string, over: Partial<CliContext> = {}): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, {
    io: { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), cwd },
    packageRoot: null,
    ...over,
  });
  return { code, stdout, stderr };
}

function withDocs(fn: (root: string) => Promise<void>): Promise<void> {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'attend-cli-')));
  fs.mkdirSync(path.join(root, 'docs/sub'), { recursive: true });
  fs.writeFileSync(path.join(root, 'docs/a.md'), 'The keeper read the notebook by the lamp.\n'.repeat(20));
  fs.writeFileSync(path.join(root, 'docs/sub/b.txt'), 'Ships and storms.\n');
  fs.writeFileSync(path.join(root, 'docs/logo.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0]));
  fs.writeFileSync(path.join(root, 'docs/.gitignore'), '*.tmp\n');
  fs.writeFileSync(path.join(root, 'docs/scratch.tmp'), 'tmp');
  return fn(root).finally(() => fs.rmSync(root, { recursive: true, force: true }));
}

test('commands registry holds tokens; help and unknown commands', async () => {
  assert.ok(commands.has('tokens'));
  const help = await run(['--help'], '/');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /tokens\s+count tokens/);
  const none = await run([], '/');
  assert.equal(none.code, 2);
  const unknown = await run(['frobnicate'], '/');
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
  const tokHelp = await run(['tokens', '--help'], '/');
  assert.equal(tokHelp.code, 0);
  assert.match(tokHelp.stdout, /usage: attend tokens/);
});

test('attend tokens prints per-file tokens, context and window shares, total, skipped and ignored', () =>
  withDocs(async (root) => {
    const model = fixturePath('tiny-mistral');
    const r = await run(['tokens', '--model', model, 'docs'], root);
    assert.equal(r.code, 0, r.stderr);
    const tok = loadTokenizer(model);
    const a = tok.count(fs.readFileSync(path.join(root, 'docs/a.md'), 'utf8'));
    const b = tok.count('Ships and storms.\n');
    const g = tok.count('*.tmp\n');
    const total = a + b + g;
    const lines = r.stdout.split('\n');
    assert.match(lines[0], /\(mistral\); context 2,048 tokens; sliding window 32 tokens/);
    const rowOf = (name: string) => lines.find((l) => l.startsWith(name))?.split(/\s{2,}/);
    assert.deepEqual(rowOf('file'), ['file', 'tokens', 'context', 'window']);
    assert.deepEqual(rowOf('docs/a.md'), [
      'docs/a.md',
      a.toLocaleString('en-US'),
      `${((a / 2048) * 100).toFixed(1)}%`,
      `${((a / 32) * 100).toFixed(1)}%`,
    ]);
    assert.deepEqual(rowOf('docs/sub/b.txt')?.slice(0, 2), ['docs/sub/b.txt', String(b)]);
    assert.deepEqual(rowOf('total (3 files)'), [
      'total (3 files)',
      total.toLocaleString('en-US'),
      `${((total / 2048) * 100).toFixed(1)}%`,
      `${((total / 32) * 100).toFixed(1)}%`,
    ]);
    assert.match(r.stdout, /skipped 1:\n {2}docs\/logo\.png: binary/);
    assert.match(r.stdout, /ignored by \.gitignore\/excludes: docs\/scratch\.tmp/);
  }));

test('attend tokens --json, --context and --window overrides; no window column without a window', () =>
  withDocs(async (root) => {
    const r = await run(['tokens', '--model', fixturePath('tiny-llama'), '--context', '1000', '--json', 'docs/sub/b.txt'], root);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.context, 1000);
    assert.equal(j.window, null);
    assert.equal(j.files.length, 1);
    assert.equal(j.total, j.files[0].tokens);
    assert.equal(j.contextShare, j.total / 1000);
    assert.equal(j.windowShare, null);
    const w = await run(['tokens', '--model', fixturePath('tiny-llama'), '--window', '4', '--json', 'docs/sub/b.txt'], root);
    assert.equal(JSON.parse(w.stdout).windowShare, j.total / 4);
    const table = await run(['tokens', '--model', fixturePath('tiny-llama'), 'docs/sub/b.txt'], root);
    assert.match(table.stdout, /no sliding window/);
    assert.ok(!/window\s*$/m.test(table.stdout.split('\n')[2]), 'no window column');
    assert.match(table.stdout, /^file\s+tokens\s+context$/m);
  }));

test('attend tokens: usage errors exit 2, missing inputs exit 1, no model names --model', () =>
  withDocs(async (root) => {
    const model = fixturePath('tiny-llama');
    for (const argv of [
      ['tokens', '--model', model],
      ['tokens', '--model', model, '--context', 'lots', 'docs'],
      ['tokens', '--bogus', 'docs'],
    ]) {
      const r = await run(argv, root);
      assert.equal(r.code, 2, argv.join(' '));
      assert.match(r.stderr, /usage: attend tokens/);
    }
    const missing = await run(['tokens', '--model', model, 'docs/sub/b.txt', 'nope.md'], root);
    assert.equal(missing.code, 1);
    assert.match(missing.stdout, /nope\.md: not found/);
    assert.match(missing.stdout, /total \(1 file\)/);
    const noModel = await run(['tokens', 'docs'], root, { packageRoot: root });
    assert.equal(noModel.code, 1);
    assert.match(noModel.stderr, /no built-in model found at .*models\/attend-default; pass --model DIR/);
    const badModel = await run(['tokens', '--model', 'docs', 'docs'], root);
    assert.equal(badModel.code, 1);
    assert.match(badModel.stderr, /not a model folder \(no config\.json\)/);
  }));

test('the built-in model under the package root is the default', () =>
  withDocs(async (root) => {
    const builtin = path.join(root, 'models/attend-default');
    fs.mkdirSync(builtin, { recursive: true });
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json'])
      fs.copyFileSync(path.join(fixturePath('tiny-qwen2'), f), path.join(builtin, f));
    const r = await run(['tokens', 'docs/sub/b.txt'], root, { packageRoot: root });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^model: models\/attend-default \(qwen2\)/);
  }));

test('formatTable pads columns and right-aligns numbers', () => {
  assert.equal(
    formatTable(
      ['a', 'n'],
      [
        ['x', '1'],
        ['long', '100'],
      ],
      new Set([1]),
    ),
    'a       n\n----  ---\nx       1\nlong  100\n',
  );
});
