// Reliability: a bad model folder. What the extension sees is the worker's `load` error: a bad-model error naming the
// file and the problem. After it, loading a good model works (the bad one leaves nothing behind). The detailed
// parsers have their own tests (config, safetensors, tokenizer, chat); this runs each fault through the worker.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ResponseError } from 'vscode-jsonrpc/node';
import { Worker } from '../../engine/worker';
import { EngineErrorCode, type EngineErrorData, type LoadParams } from '../../engine/protocol';
import { fixturePath } from '../../tools/make-fixture';

const MODEL = fixturePath('tiny-llama');
const roots: string[] = [];
after(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

/** A copy of the fixture model, then `edit` breaks it. */
function brokenModel(edit: (dir: string) => void): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-rel-model-'));
  roots.push(root);
  const dir = path.join(root, 'model');
  fs.cpSync(MODEL, dir, { recursive: true });
  edit(dir);
  return dir;
}

function editJson(file: string, edit: (j: Record<string, unknown>) => void): void {
  const j = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(j);
  fs.writeFileSync(file, JSON.stringify(j));
}

/** Rewrites the safetensors header through `edit` (the data stays where it was). */
function editSafetensorsHeader(file: string, edit: (h: Record<string, unknown>) => void): void {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  edit(header);
  let text = JSON.stringify(header);
  while ((8 + Buffer.byteLength(text)) % 8 !== 0) text += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(text), buf.subarray(8 + n)]));
}

const params = (modelDir: string, weights = true): LoadParams => ({ modelDir, window: null, sinks: null, weights });

/** Loads through the worker and returns the error data it answers with (failing if it loads). */
async function loadError(worker: Worker, modelDir: string, weights = true): Promise<EngineErrorData> {
  try {
    await worker.load(params(modelDir, weights));
  } catch (e) {
    assert.ok(e instanceof ResponseError, `a JSON-RPC error, got ${String(e)}`);
    assert.equal(e.code, EngineErrorCode.badModel);
    const data = e.data as EngineErrorData;
    assert.equal(data.kind, 'bad-model');
    return data;
  }
  assert.fail(`${modelDir} loaded`);
}

const worker = new Worker(() => undefined);
after(() => worker.dispose());

async function thenGoodModelLoads(): Promise<void> {
  const info = await worker.load(params(MODEL, false));
  assert.equal(info.family, 'llama');
}

test('missing model folder: names the folder', async () => {
  const missing = path.join(os.tmpdir(), 'attend-no-such-model-folder');
  const d = await loadError(worker, missing, false);
  assert.ok(`${d.file ?? ''}: ${d.problem}`.includes(missing), JSON.stringify(d));
  await thenGoodModelLoads();
});

test('wrong family (model_type gpt2): names config.json, the field and the value', async () => {
  const dir = brokenModel((d) => editJson(path.join(d, 'config.json'), (j) => (j['model_type'] = 'gpt2')));
  const d = await loadError(worker, dir, false);
  const msg = `${d.file ?? ''}: ${d.problem}`;
  assert.match(msg, /config\.json/);
  assert.match(msg, /model_type/);
  assert.match(msg, /"gpt2"/);
  await thenGoodModelLoads();
});

test('a missing tensor: names the tensor and the file', async () => {
  const dir = brokenModel((d) =>
    editSafetensorsHeader(path.join(d, 'model.safetensors'), (h) => delete h['model.layers.0.mlp.down_proj.weight']),
  );
  const d = await loadError(worker, dir);
  const msg = `${d.file ?? ''}: ${d.problem}`;
  assert.match(msg, /model\.layers\.0\.mlp\.down_proj\.weight/);
  assert.match(msg, /model\.safetensors|missing/);
  await thenGoodModelLoads();
});

test('a truncated safetensors file: names the file and says truncated / past the end', async () => {
  const dir = brokenModel((d) => {
    const f = path.join(d, 'model.safetensors');
    fs.truncateSync(f, Math.floor(fs.statSync(f).size / 2));
  });
  const d = await loadError(worker, dir);
  const msg = `${d.file ?? ''}: ${d.problem}`;
  assert.match(msg, /model\.safetensors/);
  assert.match(msg, /truncated|past the end/);
  await thenGoodModelLoads();
});

test('a corrupt safetensors header (not JSON): names the file', async () => {
  const dir = brokenModel((d) => {
    const f = path.join(d, 'model.safetensors');
    const buf = fs.readFileSync(f);
    buf.write('{{{{', 8, 'latin1');
    fs.writeFileSync(f, buf);
  });
  const d = await loadError(worker, dir);
  const msg = `${d.file ?? ''}: ${d.problem}`;
  assert.match(msg, /model\.safetensors/);
  assert.match(msg, /JSON/);
  await thenGoodModelLoads();
});

test('a tokenizer larger than the vocabulary: refused already when loading for counting, with both sizes', async () => {
  const vocab = (JSON.parse(fs.readFileSync(path.join(MODEL, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
  // An added token past config.json's vocab_size (a tokenizer from another checkpoint of the family).
  const dir = brokenModel((d) =>
    editJson(path.join(d, 'tokenizer.json'), (j) =>
      (j['added_tokens'] as unknown[]).push({
        id: vocab + 7,
        content: '<|extra|>',
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      }),
    ),
  );
  for (const weights of [false, true]) {
    const d = await loadError(worker, dir, weights);
    const msg = `${d.file ?? ''}: ${d.problem}`;
    assert.match(msg, new RegExp(`tokenizer\\.json has ${vocab + 8} tokens but config\\.json vocab_size is ${vocab}`), msg);
  }
  await thenGoodModelLoads();
});

test('a chat template that fails to render: names tokenizer_config.json and the template error', async () => {
  const dir = brokenModel((d) =>
    editJson(path.join(d, 'tokenizer_config.json'), (j) => (j['chat_template'] = "{{ raise_exception('no system role here') }}")),
  );
  const d = await loadError(worker, dir, false);
  const msg = `${d.file ?? ''}: ${d.problem}`;
  assert.match(msg, /tokenizer_config\.json/);
  assert.match(msg, /failed to render.*no system role here/);
  await thenGoodModelLoads();
});

test('a chat template that does not parse, or drops the user message: named too', async () => {
  const bad = brokenModel((d) => editJson(path.join(d, 'tokenizer_config.json'), (j) => (j['chat_template'] = '{% for %}')));
  assert.match((await loadError(worker, bad, false)).problem, /does not parse/);
  const dropping = brokenModel((d) => editJson(path.join(d, 'tokenizer_config.json'), (j) => (j['chat_template'] = 'no messages')));
  const d = await loadError(worker, dropping, false);
  assert.equal(d.file, dropping);
  assert.match(d.problem, /does not place the user message exactly once/);
  await thenGoodModelLoads();
});
