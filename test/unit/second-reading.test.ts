// Block memory's second reading (engine.ts SECOND_READING): a quoted, greedy answer is read with the local window and
// over the retrieved blocks alone, and the likelier of the two answers is the one streamed and returned.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Engine, logSoftmaxAt, secondReadingWins, type AskRequest, type Reading } from '../../engine/engine';
import { memoryOnly, type KvState } from '../../engine/runtime/kv';
import { readingOf } from '../../engine/worker';

const root = path.resolve(__dirname, '..', '..', '..');
const modelDir = path.join(root, 'models', 'attend-default');

/** ~1,500 tokens of notes with a pass key early on, far outside a 64-token window. */
function longDoc(): string {
  const lines: string[] = [];
  for (let i = 0; i < 60; i++) {
    lines.push(`Note ${i}: the build of module ${i} finished after ${(i * 37) % 91} seconds on runner ${i % 7}.`);
    if (i === 6) lines.push('Remember this number, it is the passkey: 482913.');
  }
  return lines.join('\n');
}

const req: AskRequest = { docs: [{ path: 'notes.txt', text: longDoc() }], question: 'Which number is the passkey?', maxNewTokens: 12 };

async function load(secondReading: boolean): Promise<Engine> {
  return Engine.load({
    modelDir,
    cacheDir: fs.mkdtempSync(path.join(os.tmpdir(), 'attend-reading-')),
    window: 64,
    sinks: 4,
    blockSize: 16,
    chunkSize: 32,
    memory: { topK: 1, secondReading },
  });
}

/** Counts Engine.read calls (one per reading decoded). */
function countReads(engine: Engine): () => number {
  type Read = (...a: unknown[]) => Promise<Reading>;
  const inner = engine as unknown as { read: Read };
  const real = inner.read.bind(engine);
  let calls = 0;
  inner.read = (...a) => (calls++, real(...a));
  return () => calls;
}

test('logSoftmaxAt is the log of the softmax probability, stable for large logits', () => {
  const row = new Float32Array([1000, 1001, 999]);
  const z = Math.exp(-1) + 1 + Math.exp(-2);
  assert.ok(Math.abs(logSoftmaxAt(row, 1) - Math.log(1 / z)) < 1e-6);
  assert.ok(Math.abs(logSoftmaxAt(row, 2) - Math.log(Math.exp(-2) / z)) < 1e-6);
});

test('the memory reading replaces the window reading only when likelier and not a fixed reply', () => {
  const r = (answer: string, meanLogProb: number, stopReason: Reading['stopReason'] = 'eos') => ({ answer, meanLogProb, stopReason });
  const replies = ['not found'];
  assert.equal(secondReadingWins(r('3.8.6-1', -0.4), r('3305566', -0.06), replies), true);
  assert.equal(secondReadingWins(r('3305566', -0.06), r('3.8.6-1', -0.4), replies), false);
  assert.equal(secondReadingWins(r('5521907', -0.06), r('not found', -0.003), replies), false, 'a partial view cannot say absent');
  assert.equal(secondReadingWins(r('5521907', -0.06), r(' Not  Found', -0.003), replies), false, 'matched as quotes are');
  assert.equal(secondReadingWins(r('not found', -0.6), r('9043938', -0.5), replies), true);
  assert.equal(secondReadingWins(r('1', -0.5), r('2', -0.5), replies), false, 'a tie keeps the window');
  assert.equal(secondReadingWins(r('1', -0.5), r('2', -0.1, 'cancelled'), replies), false);
  // Over a window passage, the window's own `not found` stays (the whole window saw no answer).
  assert.equal(secondReadingWins(r('not found', -0.6), r('9043938', -0.5), replies, 'passage'), false);
  assert.equal(secondReadingWins(r('1868', -0.6), r('1798', -0.5), replies, 'passage'), true);
  assert.equal(secondReadingWins(r('1868', -0.6), r('not found', -0.1), replies, 'passage'), false);
});

test('the worker reports which reading answered, and nothing after one reading', () => {
  const two = (chosen: 'window' | 'memory') =>
    (['window', 'memory'] as const).map((context) => ({ context, answer: context, meanLogProb: -1, chosen: context === chosen }));
  assert.deepEqual(readingOf({ readings: two('memory') }), { reading: 'memory' });
  assert.deepEqual(readingOf({ readings: two('window') }), { reading: 'window' });
  assert.deepEqual(readingOf({ readings: null }), {});
});

test('memoryOnly keeps the sinks and the pinned slots, nothing of the window', () => {
  const shape = { nLayers: 1, nKvHeads: 1, headDim: 1 };
  const st: KvState = {
    nSlots: 6,
    positions: Int32Array.from([0, 1, 40, 41, 42, 41]),
    origins: Int32Array.from([0, 1, 40, 41, 42, 7]),
    pinned: Uint8Array.from([0, 0, 0, 0, 0, 1]),
    keys: [Float32Array.from([10, 11, 12, 13, 14, 15])],
    values: [Float32Array.from([20, 21, 22, 23, 24, 25])],
    nextPos: 43,
  };
  const out = memoryOnly(st, shape, { window: 8, sinks: 2 });
  assert.deepEqual(Array.from(out.origins), [0, 1, 7]);
  assert.deepEqual(Array.from(out.keys[0]), [10, 11, 15]);
  assert.deepEqual(Array.from(out.values[0]), [20, 21, 25]);
  assert.deepEqual(Array.from(out.pinned), [0, 0, 1]);
  assert.equal(out.nextPos, 43);
});

test('with block memory, a quoted answer is read twice and the likelier reading is the answer, streamed as returned', async () => {
  const engine = await load(true);
  try {
    const streamed: string[] = [];
    const res = await engine.ask(req, { onToken: (t) => streamed.push(t.text) });
    assert.ok(res.retrieved.length > 0, 'block memory brought a far block back');
    assert.ok(res.readings, 'two readings');
    assert.deepEqual(
      res.readings.map((r) => r.context),
      ['window', 'memory'],
    );
    const chosen = res.readings.filter((r) => r.chosen);
    assert.equal(chosen.length, 1);
    const other = res.readings.find((r) => !r.chosen)!;
    assert.ok(chosen[0].meanLogProb >= other.meanLogProb, `kept ${chosen[0].meanLogProb}, dropped ${other.meanLogProb}`);
    for (const r of res.readings) assert.ok(Number.isFinite(r.meanLogProb) && r.meanLogProb <= 0);
    assert.equal(res.answer, chosen[0].answer);
    assert.equal(streamed.join('').trim(), res.answer, 'what streamed is the kept answer');
    assert.equal(
      res.tokens
        .map((t) => t.text)
        .join('')
        .trim(),
      res.answer,
    );

    // Off: one reading, the same as the window reading above.
    const off = await load(false);
    try {
      const one = await off.ask(req);
      assert.equal(one.readings, null);
      assert.equal(one.answer, res.readings[0].answer);
    } finally {
      await off.dispose();
    }
    // Free text (quote off) or sampling: answers do not compare, one reading.
    assert.equal((await engine.ask({ ...req, quote: false })).readings, null);
    assert.equal((await engine.ask({ ...req, sampling: { temperature: 0.7, topP: 1, seed: 1 } })).readings, null);
  } finally {
    await engine.dispose();
  }
});

test('when the memory reading wins, its answer and tokens are the ones streamed and returned', async () => {
  const engine = await load(true);
  try {
    // Make the second reading (over the blocks alone) a different, likelier answer: the plumbing must follow it.
    type Read = (...a: unknown[]) => Promise<Reading>;
    const inner = engine as unknown as { read: Read };
    const real = inner.read.bind(engine);
    let calls = 0;
    inner.read = async (...a) => {
      const got = await real(...a);
      if (++calls !== 2) return got;
      const tokens = [
        { ...got.tokens[0], text: 'from' },
        { ...got.tokens[0], text: ' memory' },
      ];
      return { ...got, answer: 'from memory', tokens, meanLogProb: 0 };
    };
    const streamed: string[] = [];
    const res = await engine.ask(req, { onToken: (t) => streamed.push(t.text) });
    assert.equal(calls, 2);
    assert.equal(res.answer, 'from memory');
    assert.deepEqual(streamed, ['from', ' memory']);
    assert.equal(res.generatedTokens, 2);
    assert.deepEqual(
      res.readings!.map((r) => [r.context, r.chosen]),
      [
        ['window', false],
        ['memory', true],
      ],
    );
  } finally {
    await engine.dispose();
  }
});

test('a window `not found` is read again when far blocks came back, and not when the second reading is over a passage', async () => {
  const absent = 'What is the launch code of the lighthouse?';
  // Far blocks retrieved: the blocks alone may hold what the window reading overlooked.
  const engine = await load(true);
  try {
    const res = await engine.ask({ ...req, question: absent });
    assert.ok(res.retrieved.length > 0, 'block memory brought a far block back');
    assert.equal(res.readings?.[0].answer, 'not found', `premise: the window reading says not found (${res.readings?.[0].answer})`);
    assert.equal(res.readings.length, 2);
  } finally {
    await engine.dispose();
  }
  // Nothing retrieved (the document fits the window): a passage reading can never replace a `not found`, so it is not
  // run, and the answer is the window's.
  const inWindow = await Engine.load({ modelDir, cacheDir: null, memory: { topK: 1 } });
  try {
    const lines = Array.from({ length: 14 }, (_, i) => `Note ${i}: module ${i} built in ${(i * 37) % 91} seconds on runner ${i % 7}.`);
    const reads = countReads(inWindow);
    const res = await inWindow.ask({ docs: [{ path: 'n.txt', text: lines.join('\n') }], question: absent, maxNewTokens: 12 });
    assert.equal(res.retrieved.length, 0);
    assert.deepEqual(
      res.readings?.map((r) => [r.context, r.answer, r.chosen]),
      [['window', 'not found', true]],
    );
    assert.equal(reads(), 1, 'one reading decoded');
  } finally {
    await inWindow.dispose();
  }
});

test('when the documents fit the window, the second reading is over the passage that best matches the question', async () => {
  const engine = await Engine.load({ modelDir, cacheDir: null, memory: { topK: 1 } });
  try {
    const lines = Array.from({ length: 14 }, (_, i) => `Note ${i}: module ${i} built in ${(i * 37) % 91} seconds on runner ${i % 7}.`);
    lines.splice(9, 0, 'Remember this number, it is the passkey: 482913.');
    const res = await engine.ask({
      docs: [{ path: 'n.txt', text: lines.join('\n') }],
      question: 'Which number is the passkey?',
      maxNewTokens: 12,
    });
    assert.equal(res.retrieved.length, 0);
    assert.ok(res.promptTokens > 300 && res.promptTokens < 512, `fits the window: ${res.promptTokens}`);
    assert.deepEqual(
      res.readings?.map((r) => r.context),
      ['window', 'passage'],
    );
    assert.equal(res.answer, res.readings!.find((r) => r.chosen)!.answer);
  } finally {
    await engine.dispose();
  }
});

test('a document of one passage is read once', async () => {
  const engine = await load(true);
  try {
    const res = await engine.ask({
      docs: [{ path: 'a.txt', text: 'passkey: 4821.' }],
      question: 'Which number is the passkey?',
      maxNewTokens: 6,
    });
    assert.equal(res.retrieved.length, 0);
    assert.equal(res.readings, null);
  } finally {
    await engine.dispose();
  }
});
