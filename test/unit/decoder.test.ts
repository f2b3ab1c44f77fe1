// The ONNX decoder against the float64 reference: logits and attention probabilities, every prefill/decode shape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { loadConfig } from '../../engine/config';
import { Decoder, SHORT_STEP_TOKENS } from '../../engine/runtime/decoder';
import { openCheckpoint } from '../../engine/safetensors';
import { dropRange, evictInvisible, evictionSlack, insertPinned, type KvState } from '../../engine/runtime/kv';
import { referenceForward } from '../../engine/reference';
import { transposeConcat } from '../../engine/graph/decoder';
import type { AttentionSpec, ModelConfig } from '../../engine/types';
import { randomCheckpoint, rng, testConfig } from './helpers/random-model';

function tokens(n: number, vocab: number, seed: number): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Math.floor(r() * vocab));
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

interface RunPlan {
  /** Sizes of successive steps; their sum is the sequence length. */
  readonly steps: readonly number[];
}

/** Runs the decoder over `ids` in the planned steps and checks every position's logits and attention against the reference. */
async function checkAgainstReference(cfg: ModelConfig, spec: AttentionSpec, plan: RunPlan, seed = 7, tol = 2e-4): Promise<void> {
  const ckpt = randomCheckpoint(cfg, seed);
  const n = plan.steps.reduce((a, b) => a + b, 0);
  const ids = tokens(n, cfg.vocabSize, seed + 1);
  const ref = referenceForward(cfg, { get: (name) => ckpt.readF32(name) }, ids, spec, { wantProbs: true });
  const dec = await Decoder.create(cfg, ckpt, { attention: spec });
  try {
    let state: KvState = dec.emptyState();
    let at = 0;
    for (const size of plan.steps) {
      const r = await dec.step(state, ids.slice(at, at + size), { keepLogits: size, attentions: true });
      for (let i = 0; i < size; i++) {
        const got = r.logits.subarray(i * cfg.vocabSize, (i + 1) * cfg.vocabSize);
        const diff = maxAbsDiff(got, ref.logits[at + i]);
        assert.ok(diff < tol, `logits at position ${at + i} differ by ${diff} (spec ${JSON.stringify(spec)}, steps ${plan.steps})`);
      }
      const att = r.attentions!;
      const nKeys = att.keyPositions.length;
      for (let l = 0; l < cfg.nLayers; l++) {
        for (let hd = 0; hd < cfg.nHeads; hd++) {
          for (let i = 0; i < size; i++) {
            const refRow = ref.probs![l][hd][at + i];
            const row = att.layers[l].subarray((hd * size + i) * nKeys, (hd * size + i + 1) * nKeys);
            const full = new Float64Array(refRow.length);
            let mass = 0;
            for (let k = 0; k < nKeys; k++) {
              const p = att.keyPositions[k];
              if (p < full.length) full[p] = row[k];
              mass += row[k];
            }
            assert.ok(Math.abs(mass - 1) < 1e-4, `attention row mass ${mass} at layer ${l} head ${hd} pos ${at + i}`);
            const diff = maxAbsDiff(full, refRow);
            assert.ok(diff < 1e-4, `attention at layer ${l} head ${hd} pos ${at + i} differs by ${diff}`);
          }
        }
      }
      state = r.state;
      at += size;
    }
  } finally {
    await dec.dispose();
  }
}

const FULL: AttentionSpec = { window: null, sinks: 0 };

test('single prefill equals the reference (llama, GQA 2)', async () => {
  await checkAgainstReference(testConfig(), FULL, { steps: [12] });
});

test('chunked prefill then many decode steps equal one full pass', async () => {
  await checkAgainstReference(testConfig(), FULL, { steps: [5, 4, 1, 1, 1, 1, 1, 1, 1, 1] });
});

for (const kv of [4, 2, 1]) {
  test(`GQA ratio ${4 / kv} (nKvHeads ${kv})`, async () => {
    await checkAgainstReference(testConfig({ nKvHeads: kv }), FULL, { steps: [6, 3, 1, 1] }, 11 + kv);
  });
}

test('tied embeddings', async () => {
  await checkAgainstReference(testConfig({ tieWordEmbeddings: true }), FULL, { steps: [7, 1, 1] });
});

test('Qwen2: q/k/v biases', async () => {
  await checkAgainstReference(testConfig({ family: 'qwen2', attentionBias: true, tieWordEmbeddings: true }), FULL, { steps: [6, 2, 1] });
});

test('Llama with attention_bias: q/k/v and o_proj biases', async () => {
  await checkAgainstReference(testConfig({ attentionBias: true }), FULL, { steps: [5, 1, 1] });
});

test('rope_theta and llama3 rope scaling', async () => {
  const cfg = testConfig({
    ropeTheta: 500000,
    ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 },
  });
  await checkAgainstReference(cfg, FULL, { steps: [10, 1, 1] });
});

test('linear rope scaling', async () => {
  await checkAgainstReference(testConfig({ ropeScaling: { type: 'linear', factor: 4 } }), FULL, { steps: [8, 1] });
});

test('sliding window without sinks (GQA local_window_size): longer than the window, chunked and decoded', async () => {
  await checkAgainstReference(testConfig(), { window: 6, sinks: 0 }, { steps: [9, 5, 1, 1, 1, 1, 1, 4, 1] });
});

test('sliding window with attention sinks (bias mask): chunked prefill past the window and decode', async () => {
  await checkAgainstReference(testConfig(), { window: 6, sinks: 2 }, { steps: [4, 7, 5, 1, 1, 1, 1, 3, 1] });
});

test('invisible slots left by lazy eviction change nothing: window 16 (slack 4), both mask kinds', async () => {
  const steps = [20, 1, 1, 1, 1, 1, 1, 2, 1, 3, 1, 1];
  await checkAgainstReference(testConfig(), { window: 16, sinks: 0 }, { steps });
  await checkAgainstReference(testConfig(), { window: 16, sinks: 2 }, { steps });
});

test('sinks past the trained sink distance: the step sees them moved along, equal to the reference with shifted positions', async () => {
  const cfg = testConfig({ sinkDistance: 20 });
  const spec: AttentionSpec = { window: 8, sinks: 2 };
  const ckpt = randomCheckpoint(cfg, 21);
  const ids = tokens(40, cfg.vocabSize, 22);
  const dec = await Decoder.create(cfg, ckpt, { attention: spec });
  try {
    assert.equal(dec.sinkShift(20), 0);
    assert.equal(dec.sinkShift(39), 19);
    // The sinks alone, then the rest in one step whose last query (39) is 19 past the limit.
    const first = await dec.step(dec.emptyState(), ids.slice(0, 2));
    const r = await dec.step(first.state, ids.slice(2), { keepLogits: 38 });
    // Sinks only attend to each other, so computing them at positions 19, 20 equals moving them there afterwards.
    const positions = ids.map((_, i) => (i < 2 ? i + 19 : i));
    const moved = referenceForward(cfg, { get: (name) => ckpt.readF32(name) }, ids, spec, { positions });
    const plain = referenceForward(cfg, { get: (name) => ckpt.readF32(name) }, ids, spec);
    for (let i = 0; i < 38; i++) {
      const got = r.logits.subarray(i * cfg.vocabSize, (i + 1) * cfg.vocabSize);
      const diff = maxAbsDiff(got, moved.logits[2 + i]);
      assert.ok(diff < 2e-4, `logits at position ${2 + i} differ by ${diff} from the shifted reference`);
    }
    assert.ok(maxAbsDiff(r.logits.subarray(37 * cfg.vocabSize), plain.logits[39]) > 1e-3, 'the shift changes the numbers');
    // The state keeps the sinks' keys at their own positions: the next step shifts from there, not twice.
    for (let l = 0; l < cfg.nLayers; l++)
      for (let h = 0; h < cfg.nKvHeads; h++) {
        const d = cfg.headDim;
        const was = first.state.keys[l].subarray(h * 2 * d, (h * 2 + 2) * d);
        const now = r.state.keys[l].subarray(h * r.state.nSlots * d, (h * r.state.nSlots + 2) * d);
        assert.ok(maxAbsDiff(was, now) === 0, `layer ${l} head ${h}: sink keys kept`);
      }
  } finally {
    await dec.dispose();
  }
});

test('chunk larger than the window', async () => {
  await checkAgainstReference(testConfig({ nKvHeads: 1 }), { window: 4, sinks: 1 }, { steps: [13, 1, 1] });
});

test('memory is bounded by sinks + window, not by length', async () => {
  const cfg = testConfig();
  const spec: AttentionSpec = { window: 8, sinks: 2 };
  const dec = await Decoder.create(cfg, randomCheckpoint(cfg), { attention: spec });
  try {
    let state = dec.emptyState();
    const ids = tokens(60, cfg.vocabSize, 3);
    const slack = evictionSlack(spec);
    assert.equal(slack, 2);
    let evictions = 0;
    for (let at = 0; at < ids.length; at += 5) {
      const before = state.nSlots;
      state = (await dec.step(state, ids.slice(at, at + 5))).state;
      if (state.nSlots < before + 5) evictions++;
      assert.ok(state.nSlots <= spec.sinks + spec.window! - 1 + slack, `cache holds ${state.nSlots} slots after ${at + 5} tokens`);
      // Everything a later query can see is there; what it cannot see is at most `slack` slots.
      const tight = evictInvisible(state, dec.shape, spec);
      assert.ok(state.nSlots - tight.nSlots <= slack, `${state.nSlots - tight.nSlots} invisible slots kept`);
    }
    assert.ok(evictions >= 10, `evicted on ${evictions} of 12 steps`);
    assert.deepEqual(Array.from(evictInvisible(state, dec.shape, spec).positions), [0, 1, 53, 54, 55, 56, 57, 58, 59]);
    assert.equal(state.nextPos, 60);
  } finally {
    await dec.dispose();
  }
});

test('pinned slots re-inserted after a drop reproduce the full-attention logits; captured KV equals the cache', async () => {
  const cfg = testConfig();
  const ckpt = randomCheckpoint(cfg, 21);
  const ids = tokens(20, cfg.vocabSize, 22);
  const ref = referenceForward(cfg, { get: (name) => ckpt.readF32(name) }, ids, FULL);
  const dec = await Decoder.create(cfg, ckpt, { attention: FULL, forceBiasMask: true });
  try {
    const first = await dec.step(dec.emptyState(), ids.slice(0, 16), { captureNew: true });
    // The captured keys of tokens 4..8 are exactly what the cache holds for them.
    const dropped = dropRange(first.state, dec.shape, 4, 9);
    const { nKvHeads, headDim } = dec.shape;
    const slice = (a: Float32Array): Float32Array => {
      const out = new Float32Array(nKvHeads * 5 * headDim);
      for (let h = 0; h < nKvHeads; h++) out.set(a.subarray((h * 16 + 4) * headDim, (h * 16 + 9) * headDim), h * 5 * headDim);
      return out;
    };
    const batch = {
      positions: Int32Array.from([4, 5, 6, 7, 8]),
      origins: Int32Array.from([4, 5, 6, 7, 8]),
      keys: first.newKv!.keys.map(slice),
      values: first.newKv!.values.map(slice),
    };
    const restored = insertPinned(dropped, dec.shape, batch);
    const r = await dec.step(restored, ids.slice(16), { keepLogits: 4, queries: true });
    for (let i = 0; i < 4; i++) {
      const diff = maxAbsDiff(r.logits.subarray(i * cfg.vocabSize, (i + 1) * cfg.vocabSize), ref.logits[16 + i]);
      assert.ok(diff < 2e-4, `position ${16 + i}: ${diff}`);
    }
    assert.equal(r.queries!.length, cfg.nLayers);
    assert.equal(r.queries![0].length, 4 * cfg.nHeads * cfg.headDim);
    // Without the re-inserted slots the logits must differ (the test can fail).
    const without = await dec.step(dropped, ids.slice(16), { keepLogits: 1 });
    assert.ok(maxAbsDiff(without.logits, ref.logits[19]) > 1e-3);
  } finally {
    await dec.dispose();
  }
});

test("short steps of a small model run on a one-thread session and compute the threaded session's numbers bit for bit", async () => {
  const dir = path.resolve(__dirname, '../../../models/attend-default');
  const cfg = loadConfig(dir);
  const spec: AttentionSpec = { window: 512, sinks: 4 };
  const both = await Decoder.create(cfg, openCheckpoint(dir), { attention: spec, forceBiasMask: true });
  const one = await Decoder.create(cfg, openCheckpoint(dir), { attention: spec, forceBiasMask: true, shortStepSession: false });
  try {
    assert.equal(both.shortStepSession, true, 'the built-in model is small enough for a short-step session');
    assert.equal(one.shortStepSession, false);
    assert.ok(SHORT_STEP_TOKENS >= 12);
    const ids = tokens(720, cfg.vocabSize, 41);
    // The documents on the threaded session (steps > SHORT_STEP_TOKENS), then a question and decoded tokens.
    let a = (await both.step(both.emptyState(), ids.slice(0, 512))).state;
    a = (await both.step(a, ids.slice(512, 688))).state;
    let b = (await one.step(one.emptyState(), ids.slice(0, 512))).state;
    b = (await one.step(b, ids.slice(512, 688))).state;
    for (const size of [12, 1, 1, 1]) {
      const at = a.nextPos;
      const ra = await both.step(a, ids.slice(at, at + size), { attentions: true, queries: true });
      const rb = await one.step(b, ids.slice(at, at + size), { attentions: true, queries: true });
      assert.deepEqual(ra.logits, rb.logits, `logits of a ${size}-token step`);
      for (let l = 0; l < cfg.nLayers; l++) {
        assert.deepEqual(ra.state.keys[l], rb.state.keys[l], `layer ${l} keys after a ${size}-token step`);
        assert.deepEqual(ra.state.values[l], rb.state.values[l], `layer ${l} values after a ${size}-token step`);
        assert.deepEqual(ra.attentions!.layers[l], rb.attentions!.layers[l], `layer ${l} attention of a ${size}-token step`);
        assert.deepEqual(ra.queries![l], rb.queries![l], `layer ${l} queries of a ${size}-token step`);
      }
      a = ra.state;
      b = rb.state;
    }
  } finally {
    await both.dispose();
    await one.dispose();
  }
});

test('transposeConcat lays (out, in) weights side by side as one (in, sum(out)) matrix, tiles or not', () => {
  // Sizes around and between the 64-element tiles, three parts of different widths.
  const inDim = 131;
  const outs = [70, 1, 129];
  const r = rng(7);
  const parts = outs.map((n) => Float32Array.from({ length: n * inDim }, () => r() - 0.5));
  const t = transposeConcat(parts, outs, inDim);
  const total = outs.reduce((a, b) => a + b, 0);
  assert.equal(t.length, inDim * total);
  let col0 = 0;
  parts.forEach((w, p) => {
    for (let o = 0; o < outs[p]; o++)
      for (let i = 0; i < inDim; i++) if (t[i * total + col0 + o] !== w[o * inDim + i]) assert.fail(`part ${p}: (${o}, ${i}) misplaced`);
    col0 += outs[p];
  });
});
