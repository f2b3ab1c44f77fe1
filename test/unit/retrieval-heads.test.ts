// Retrieval heads: the calibration that tells block memory which heads look things up, its cache file, and the
// weighting in block scoring.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Decoder } from '../../engine/runtime/decoder';
import { loadConfig } from '../../engine/config';
import { openCheckpoint } from '../../engine/safetensors';
import { loadTokenizer } from '../../engine/tokenizer';
import { assemblePrompt, loadPromptFrame } from '../../engine/prompt';
import { calibrationDocs, forgetRetrievalHeads, measureRetrievalHeads, retrievalHeads } from '../../engine/retrieval-heads';
import { scoreBlocks, topBlocks } from '../../engine/memory';
import { testConfig } from './helpers/random-model';

const root = path.resolve(__dirname, '..', '..', '..');
const modelDir = path.join(root, 'models', 'attend-default');

async function builtIn() {
  const cfg = loadConfig(modelDir);
  const decoder = await Decoder.create(cfg, openCheckpoint(modelDir), { attention: { window: 512, sinks: 4 }, forceBiasMask: true });
  return { cfg, decoder, tok: loadTokenizer(modelDir), frame: loadPromptFrame(modelDir) };
}

test('calibration documents: the needle range holds the pass key sentence and the prompt fits the window', async () => {
  const { tok, frame, decoder } = await builtIn();
  await decoder.dispose();
  const docs = calibrationDocs(tok, frame, 512);
  assert.equal(docs.length, 3);
  const depths = docs.map((d) => d.start / d.text.length);
  assert.ok(depths[0] < depths[1] && depths[1] < depths[2], `needles at increasing depth: ${depths}`);
  for (const d of docs) {
    assert.match(d.text.slice(d.start, d.end), /^The pass key is (\d{5})\. Remember it\. \1 is the pass key\. $/);
    const n = assemblePrompt(tok, frame, [{ path: 'notes.txt', text: d.text }], 'What is the pass key?').ids.length;
    assert.ok(n <= 512 * 0.75 + 40 && n > 512 * 0.5, `${n} prompt tokens for a 512-token window`);
  }
});

test('the built-in model has a few retrieval heads, and the weights single them out', async () => {
  const { cfg, decoder, tok, frame } = await builtIn();
  try {
    const w = await measureRetrievalHeads(decoder, tok, frame, 512);
    assert.ok(w);
    assert.equal(w.length, cfg.nLayers * cfg.nHeads);
    assert.equal(Math.max(...w), 1);
    assert.ok(w.every((x) => x >= 0 && x <= 1));
    const strong = w.filter((x) => x > 0.3).length;
    const quiet = w.filter((x) => x < 0.1).length;
    assert.ok(strong >= 1 && strong <= w.length / 2, `${strong} of ${w.length} heads above 0.3: ${Array.from(w, (x) => x.toFixed(2))}`);
    assert.ok(quiet >= w.length / 2, `${quiet} of ${w.length} heads below 0.1`);
  } finally {
    await decoder.dispose();
  }
});

test('retrieval-head weights are stored per model folder and read back; a damaged file is measured again', async () => {
  const { cfg, decoder, tok, frame } = await builtIn();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-heads-'));
  try {
    const first = await retrievalHeads(dir, decoder, tok, frame, 512);
    const file = path.join(dir, 'retrieval-heads.json');
    assert.ok(fs.existsSync(file));
    // A stored file is used as is (no second calibration): replace the weights and see them come back.
    const mine = Array.from({ length: cfg.nLayers * cfg.nHeads }, (_, i) => (i === 3 ? 1 : 0));
    fs.writeFileSync(file, JSON.stringify({ version: 1, window: 512, weights: mine }));
    assert.deepEqual(Array.from((await retrievalHeads(dir, decoder, tok, frame, 512))!), mine);
    // Stored for another window, or damaged: measured again and rewritten.
    assert.deepEqual(await retrievalHeads(dir, decoder, tok, frame, 256), await measureRetrievalHeads(decoder, tok, frame, 256));
    fs.writeFileSync(file, '{"version": 1, "window": 512, "weights": [0.5, "x"');
    assert.deepEqual(await retrievalHeads(dir, decoder, tok, frame, 512), first);
    assert.equal((JSON.parse(fs.readFileSync(file, 'utf8')) as { weights: number[] }).weights.length, cfg.nLayers * cfg.nHeads);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await decoder.dispose();
  }
});

test('temp files left by a killed writer: old ones are swept when measuring, all of them by Clear Cache', async () => {
  const { decoder, tok, frame } = await builtIn();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-heads-'));
  try {
    const old = path.join(dir, 'retrieval-heads.json.4242.tmp');
    const fresh = path.join(dir, 'retrieval-heads.json.4343.tmp');
    const other = path.join(dir, 'unrelated.4242.tmp');
    for (const f of [old, fresh, other]) fs.writeFileSync(f, '{');
    const twoHoursAgo = new Date(Date.now() - 2 * 3600 * 1000);
    fs.utimesSync(old, twoHoursAgo, twoHoursAgo);
    await retrievalHeads(dir, decoder, tok, frame, 512);
    assert.ok(!fs.existsSync(old), 'an hour-old temp file is swept');
    assert.ok(fs.existsSync(fresh), 'a fresh one may be another process writing right now');
    assert.ok(!fs.readdirSync(dir).some((n) => n.endsWith(`.${process.pid}.tmp`)), 'no temp file of our own is left');
    forgetRetrievalHeads(dir);
    assert.ok(!fs.existsSync(fresh) && !fs.existsSync(path.join(dir, 'retrieval-heads.json')));
    assert.ok(fs.existsSync(other), 'files that are not ours stay');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    await decoder.dispose();
  }
});

test('block scoring with head weights follows the weighted heads, not the loudest ones', () => {
  // Head 0 matches block 2; heads 1-3 all prefer block 0. Equal weights pick block 0, weights on head 0 pick block 2.
  const c = testConfig({ nLayers: 1, nHeads: 4, nKvHeads: 4, headDim: 4 });
  const q = new Float32Array(4 * 4);
  for (let h = 0; h < 4; h++) q[h * 4 + h] = 4;
  const len = 2;
  const block = (b: number) => {
    const k = new Float32Array(4 * len * 4);
    if (b === 2) k[(0 * len + 1) * 4 + 0] = 3;
    if (b === 0) for (let h = 1; h < 4; h++) k[(h * len + 0) * 4 + h] = 3;
    return { count: len, keys: [k] };
  };
  const equal = scoreBlocks(c, [q], 1, 3, block);
  assert.deepEqual(topBlocks(equal, 1), [0]);
  const weighted = scoreBlocks(c, [q], 1, 3, block, Float64Array.from([1, 0.05, 0.05, 0.05]));
  assert.deepEqual(topBlocks(weighted, 1), [2]);
});
