// Tests for the float64 reference forward pass (engine/reference.ts). Each test pins one piece of the HF
// Llama/Qwen2/Mistral semantics independently: hand-computed logits, causality, sliding window + sinks, probability
// rows, GQA head mapping, RoPE convention and scaling.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { referenceForward, ropeInvFreq, type ReferenceWeights } from '../../engine/reference';
import type { AttentionSpec, ModelConfig, RopeScaling } from '../../engine/types';
import { mulberry32 } from '../../engine/rng';

// ---------------------------------------------------------------------------------------------------------------
// helpers

const FULL: AttentionSpec = { window: null, sinks: 0 };

function makeCfg(over: Partial<ModelConfig>): ModelConfig {
  return {
    family: 'llama',
    hiddenSize: 16,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 4,
    headDim: 8,
    intermediateSize: 24,
    vocabSize: 32,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 4096,
    slidingWindow: null,
    tieWordEmbeddings: false,
    attentionBias: false,
    bosTokenId: null,
    eosTokenIds: [],
    attentionSinks: null,
    sinkDistance: null,
    quoteReplies: null,
    ...over,
  };
}

class MapWeights implements ReferenceWeights {
  constructor(readonly m: Map<string, Float32Array>) {}
  get(name: string): Float32Array {
    const t = this.m.get(name);
    if (!t) throw new Error(`test weights: no ${name}`);
    return t;
  }
}

/** Random model in memory, weights ~ U(-scale, scale); norms near 1. */
function randomWeights(cfg: ModelConfig, seed: number): Map<string, Float32Array> {
  const rnd = mulberry32(seed);
  const m = new Map<string, Float32Array>();
  const rand = (len: number, scale: number): Float32Array => {
    const a = new Float32Array(len);
    for (let i = 0; i < len; i++) a[i] = (rnd() * 2 - 1) * scale;
    return a;
  };
  const norm = (len: number): Float32Array => {
    const a = new Float32Array(len);
    for (let i = 0; i < len; i++) a[i] = 0.8 + 0.4 * rnd();
    return a;
  };
  const { hiddenSize: H, nHeads: nh, nKvHeads: nkv, headDim: hd, intermediateSize: I, vocabSize: V } = cfg;
  m.set('model.embed_tokens.weight', rand(V * H, 1));
  for (let l = 0; l < cfg.nLayers; l++) {
    const p = `model.layers.${l}.`;
    m.set(p + 'input_layernorm.weight', norm(H));
    m.set(p + 'post_attention_layernorm.weight', norm(H));
    m.set(p + 'self_attn.q_proj.weight', rand(nh * hd * H, 0.6));
    m.set(p + 'self_attn.k_proj.weight', rand(nkv * hd * H, 0.6));
    m.set(p + 'self_attn.v_proj.weight', rand(nkv * hd * H, 0.5));
    m.set(p + 'self_attn.o_proj.weight', rand(H * nh * hd, 0.3));
    if (cfg.attentionBias) {
      m.set(p + 'self_attn.q_proj.bias', rand(nh * hd, 0.5));
      m.set(p + 'self_attn.k_proj.bias', rand(nkv * hd, 0.5));
      m.set(p + 'self_attn.v_proj.bias', rand(nkv * hd, 0.5));
    }
    m.set(p + 'mlp.gate_proj.weight', rand(I * H, 0.4));
    m.set(p + 'mlp.up_proj.weight', rand(I * H, 0.4));
    m.set(p + 'mlp.down_proj.weight', rand(H * I, 0.3));
  }
  m.set('model.norm.weight', norm(H));
  if (!cfg.tieWordEmbeddings) m.set('lm_head.weight', rand(V * H, 0.5));
  return m;
}

function randomTokens(n: number, V: number, seed: number): number[] {
  const rnd = mulberry32(seed);
  return Array.from({ length: n }, () => Math.floor(rnd() * V));
}

function maxAbsDiff(a: Float64Array, b: Float64Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

function assertClose(a: Float64Array[], b: Float64Array[], tol: number, what: string): void {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) {
    const d = maxAbsDiff(a[i], b[i]);
    assert.ok(d <= tol, `${what}: row ${i} differs by ${d} > ${tol}`);
  }
}

function assertDiffers(a: Float64Array, b: Float64Array, what: string): void {
  assert.ok(maxAbsDiff(a, b) > 1e-9, `${what}: expected a change, got identical logits`);
}

const f32 = (xs: number[]): Float32Array => Float32Array.from(xs);

// ---------------------------------------------------------------------------------------------------------------
// (a) hand-computed logits

/**
 * 1 layer, 1 head, hidden 2, headDim 2, intermediate 1, vocab 2, eps 3.
 * Embeddings: tok0 = [1, 1], tok1 = [1, -1] (both mean square 1, so rmsnorm scale = 1/sqrt(1 + 3) = 1/2).
 */
function handModel(bias: boolean): { cfg: ModelConfig; w: MapWeights } {
  const cfg = makeCfg({
    family: bias ? 'qwen2' : 'llama',
    hiddenSize: 2,
    nLayers: 1,
    nHeads: 1,
    nKvHeads: 1,
    headDim: 2,
    intermediateSize: 1,
    vocabSize: 2,
    rmsNormEps: 3,
    attentionBias: bias,
  });
  const m = new Map<string, Float32Array>();
  m.set('model.embed_tokens.weight', f32([1, 1, 1, -1]));
  m.set('model.layers.0.input_layernorm.weight', f32([2, 4]));
  m.set('model.layers.0.self_attn.q_proj.weight', f32([1, 0, 0, 1])); // identity
  m.set('model.layers.0.self_attn.k_proj.weight', f32([0, 1, 1, 0])); // swap
  m.set('model.layers.0.self_attn.v_proj.weight', f32([1, 0, 0, 2]));
  m.set('model.layers.0.self_attn.o_proj.weight', f32([1, 0, 1, 1]));
  if (bias) {
    m.set('model.layers.0.self_attn.q_proj.bias', f32([0.5, 0]));
    m.set('model.layers.0.self_attn.k_proj.bias', f32([0, -1]));
    m.set('model.layers.0.self_attn.v_proj.bias', f32([1, 0]));
  }
  m.set('model.layers.0.post_attention_layernorm.weight', f32([1, 1]));
  m.set('model.layers.0.mlp.gate_proj.weight', f32([1, 0])); // (1, 2)
  m.set('model.layers.0.mlp.up_proj.weight', f32([0, 2])); // (1, 2)
  m.set('model.layers.0.mlp.down_proj.weight', f32([1, -1])); // (2, 1)
  m.set('model.norm.weight', f32([1, 0.5]));
  m.set('lm_head.weight', f32([1, 0, 1, 1]));
  return { cfg, w: new MapWeights(m) };
}

/** Everything after attention, by hand: given residual x and attention output o (both 2-vectors) -> logits. */
function handTail(x: [number, number], o: [number, number], eps: number): [number, number] {
  // h = x + o
  const h0 = x[0] + o[0];
  const h1 = x[1] + o[1];
  // post_attention_layernorm (weight [1, 1])
  const r = 1 / Math.sqrt((h0 * h0 + h1 * h1) / 2 + eps);
  const n0 = h0 * r;
  const n1 = h1 * r;
  // gate = [1, 0]·n = n0, up = [0, 2]·n = 2 n1, act = silu(gate) * up
  const g = n0;
  const u = 2 * n1;
  const act = (g / (1 + Math.exp(-g))) * u;
  // down = [[1], [-1]] act; x' = h + down
  const y0 = h0 + act;
  const y1 = h1 - act;
  // final norm (weight [1, 0.5])
  const rf = 1 / Math.sqrt((y0 * y0 + y1 * y1) / 2 + eps);
  const z0 = y0 * rf * 1;
  const z1 = y1 * rf * 0.5;
  // lm_head [[1, 0], [1, 1]]
  return [z0, z0 + z1];
}

test('(a) hand-computed logits: 1 layer, 1 head, 2 tokens, llama', () => {
  const { cfg, w } = handModel(false);
  const res = referenceForward(cfg, w, [0, 1], FULL, { wantProbs: true });
  const eps = 3;
  // Position 0, tok0: x = [1, 1]; rmsnorm scale 1/2, weight [2, 4] -> n = [1, 2].
  // q = I n = [1, 2]; k = swap n = [2, 1]; v = diag(1, 2) n = [1, 4]. Only one key: attention output = v = [1, 4].
  // o = [[1, 0], [1, 1]] [1, 4] = [1, 5].
  const l0 = handTail([1, 1], [1, 5], eps);
  // Position 1, tok1: x = [1, -1] -> n = [1, -2]; q1 = [1, -2]; k1 = [-2, 1]; v1 = [1, -4].
  // RoPE with headDim 2: inv_freq = [theta^0] = [1], angle = position. Rotation by angle a: [x0 cos a - x1 sin a,
  // x1 cos a + x0 sin a]. Key 0 at position 0 is unrotated: k0 = [2, 1]; query and key 1 at position 1 rotate by 1.
  const c = Math.cos(1);
  const s = Math.sin(1);
  const q1 = [1 * c - -2 * s, -2 * c + 1 * s];
  const k1 = [-2 * c - 1 * s, 1 * c + -2 * s];
  const s0 = (q1[0] * 2 + q1[1] * 1) / Math.SQRT2; // scale 1/sqrt(headDim) = 1/sqrt(2)
  const s1 = (q1[0] * k1[0] + q1[1] * k1[1]) / Math.SQRT2; // = (q1·k1 unrotated)/√2 = (-2 - 2)/√2
  assert.ok(Math.abs(s1 - -4 / Math.SQRT2) < 1e-12);
  const p0 = 1 / (1 + Math.exp(s1 - s0));
  const p1 = 1 - p0;
  // attention output = p0 v0 + p1 v1 = [p0 + p1, 4 p0 - 4 p1]; o = [a0, a0 + a1]
  const a0 = p0 * 1 + p1 * 1;
  const a1 = p0 * 4 + p1 * -4;
  const l1 = handTail([1, -1], [a0, a0 + a1], eps);

  assert.equal(res.logits.length, 2);
  assertClose(res.logits, [Float64Array.from(l0), Float64Array.from(l1)], 1e-12, 'hand logits');
  const pr = res.probs![0][0];
  assert.deepEqual(Array.from(pr[0]), [1]);
  assert.ok(Math.abs(pr[1][0] - p0) < 1e-14 && Math.abs(pr[1][1] - p1) < 1e-14);
});

test('(a) hand-computed logits: qwen2 with q/k/v biases, 2 tokens', () => {
  const { cfg, w } = handModel(true);
  const res = referenceForward(cfg, w, [1, 0], FULL);
  const eps = 3;
  // Position 0, tok1: x = [1, -1] -> n = [1, -2]; v0 = diag(1, 2) n + [1, 0] = [2, -4]; o = [2, -2].
  const l0 = handTail([1, -1], [2, -2], eps);
  // Position 1, tok0: x = [1, 1] -> n = [1, 2]; q1 = [1, 2] + [0.5, 0] = [1.5, 2]; k1 = [2, 1] + [0, -1] = [2, 0];
  // v1 = [1, 4] + [1, 0] = [2, 4]. Key 0 (from tok1, n = [1, -2]): k0 = [-2, 1] + [0, -1] = [-2, 0].
  const c = Math.cos(1);
  const s = Math.sin(1);
  const q1 = [1.5 * c - 2 * s, 2 * c + 1.5 * s];
  const k1 = [2 * c, 2 * s];
  const s0 = (q1[0] * -2 + q1[1] * 0) / Math.SQRT2;
  const s1 = (q1[0] * k1[0] + q1[1] * k1[1]) / Math.SQRT2; // = ([1.5, 2]·[2, 0])/√2 = 3/√2
  assert.ok(Math.abs(s1 - 3 / Math.SQRT2) < 1e-12);
  const p0 = 1 / (1 + Math.exp(s1 - s0));
  const p1 = 1 - p0;
  // v0 = [2, -4], v1 = [2, 4]: attention = [2, -4 p0 + 4 p1]; o = [a0, a0 + a1]
  const a0 = 2;
  const a1 = -4 * p0 + 4 * p1;
  const l1 = handTail([1, 1], [a0, a0 + a1], eps);
  assertClose(res.logits, [Float64Array.from(l0), Float64Array.from(l1)], 1e-12, 'hand qwen2 logits');
});

test('(a) RoPE pairs dims (i, i + d/2) (rotate_half), not adjacent dims', () => {
  // hidden 4, headDim 4, theta 100 -> inv_freq = [1, 100^(-1/2)] = [1, 0.1]. eps 0, all norms 1, q = k = identity.
  const cfg = makeCfg({
    hiddenSize: 4,
    nLayers: 1,
    nHeads: 1,
    nKvHeads: 1,
    headDim: 4,
    intermediateSize: 1,
    vocabSize: 1,
    rmsNormEps: 0,
    ropeTheta: 100,
  });
  assert.deepEqual(Array.from(ropeInvFreq(cfg)), [1, 0.1]);
  const id = f32([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]);
  const m = new Map<string, Float32Array>([
    ['model.embed_tokens.weight', f32([1, 1, 0, 0])],
    ['model.layers.0.input_layernorm.weight', f32([1, 1, 1, 1])],
    ['model.layers.0.post_attention_layernorm.weight', f32([1, 1, 1, 1])],
    ['model.layers.0.self_attn.q_proj.weight', id],
    ['model.layers.0.self_attn.k_proj.weight', id],
    ['model.layers.0.self_attn.v_proj.weight', new Float32Array(16)],
    ['model.layers.0.self_attn.o_proj.weight', new Float32Array(16)],
    ['model.layers.0.mlp.gate_proj.weight', new Float32Array(4)],
    ['model.layers.0.mlp.up_proj.weight', new Float32Array(4)],
    ['model.layers.0.mlp.down_proj.weight', new Float32Array(4)],
    ['model.norm.weight', f32([1, 1, 1, 1])],
    ['lm_head.weight', f32([1, 0, 0, 0])],
  ]);
  const res = referenceForward(cfg, new MapWeights(m), [0, 0], FULL, {
    wantProbs: true,
  });
  // x = [1, 1, 0, 0], mean square 1/2 -> n = √2 [1, 1, 0, 0] = q = k.
  // Query at position 1, rotate_half pairs (0, 2) at freq 1 and (1, 3) at freq 0.1:
  //   q1 = √2 [cos 1, cos 0.1, sin 1, sin 0.1]; k0 = √2 [1, 1, 0, 0]  -> q1·k0 = 2 (cos 1 + cos 0.1)
  //   q1·k1 = |n|² = 4 (same rotation).  Scores are divided by sqrt(4) = 2.
  // (Adjacent pairing would give q1·k0 = 4 cos 1 instead.)
  const s0 = (2 * (Math.cos(1) + Math.cos(0.1))) / 2;
  const s1 = 4 / 2;
  const p0 = 1 / (1 + Math.exp(s1 - s0));
  const pr = res.probs![0][0][1];
  assert.ok(Math.abs(pr[0] - p0) < 1e-14, `p0 ${pr[0]} vs ${p0}`);
  // logits: attention/MLP outputs are zero, so logit = final rmsnorm(x)[0] = √2.
  assert.ok(Math.abs(res.logits[1][0] - Math.SQRT2) < 1e-14);
});

// ---------------------------------------------------------------------------------------------------------------
// random configurations

const configs: Array<{ name: string; cfg: ModelConfig }> = [
  { name: 'llama MHA (GQA ratio 1), untied', cfg: makeCfg({}) },
  {
    name: 'llama GQA ratio 2, tied',
    cfg: makeCfg({ nKvHeads: 2, tieWordEmbeddings: true }),
  },
  { name: 'llama GQA ratio 4 (MQA)', cfg: makeCfg({ nKvHeads: 1 }) },
  {
    name: 'qwen2 with biases, GQA 2, tied',
    cfg: makeCfg({
      family: 'qwen2',
      nKvHeads: 2,
      attentionBias: true,
      tieWordEmbeddings: true,
      ropeTheta: 1e6,
    }),
  },
  {
    name: 'llama3 rope scaling',
    cfg: makeCfg({
      nKvHeads: 2,
      ropeScaling: {
        type: 'llama3',
        factor: 8,
        lowFreqFactor: 1,
        highFreqFactor: 4,
        originalMaxPositionEmbeddings: 64,
      },
    }),
  },
  {
    name: 'mistral linear rope scaling',
    cfg: makeCfg({
      family: 'mistral',
      nKvHeads: 2,
      ropeScaling: { type: 'linear', factor: 4 },
    }),
  },
];

test('(b) causality: logits at i do not change when later tokens change', () => {
  for (const [ci, { name, cfg }] of configs.entries()) {
    const w = new MapWeights(randomWeights(cfg, 100 + ci));
    const toks = randomTokens(8, cfg.vocabSize, 7 + ci);
    const base = referenceForward(cfg, w, toks, FULL).logits;
    for (const j of [3, 7]) {
      const alt = toks.slice();
      alt[j] = (alt[j] + 5) % cfg.vocabSize;
      const got = referenceForward(cfg, w, alt, FULL).logits;
      for (let i = 0; i < j; i++) assert.deepEqual(got[i], base[i], `${name}: position ${i} changed by token ${j}`);
      for (let i = j; i < toks.length; i++) assertDiffers(got[i], base[i], `${name}: position ${i} after token ${j}`);
    }
  }
});

test('(c) sliding window: exact window edge, receptive field over layers, sinks', () => {
  const n = 12;
  const last = n - 1;
  const W = 3;
  const change = (toks: number[], j: number, V: number): number[] => {
    const t = toks.slice();
    t[j] = (t[j] + 11) % V;
    return t;
  };
  // 1 layer: the last query sees keys last-W+1 .. last.
  const cfg1 = makeCfg({ nLayers: 1, nKvHeads: 2 });
  const w1 = new MapWeights(randomWeights(cfg1, 5));
  const toks = randomTokens(n, cfg1.vocabSize, 9);
  const win: AttentionSpec = { window: W, sinks: 0 };
  const base1 = referenceForward(cfg1, w1, toks, win).logits[last];
  for (let j = 0; j <= last - W; j++) {
    assert.deepEqual(referenceForward(cfg1, w1, change(toks, j, 32), win).logits[last], base1, `1 layer, token ${j} outside`);
  }
  for (let j = last - W + 1; j <= last; j++) {
    assertDiffers(referenceForward(cfg1, w1, change(toks, j, 32), win).logits[last], base1, `1 layer, token ${j} inside`);
  }
  // Full attention does see the far token (so the test above is not vacuous).
  assertDiffers(
    referenceForward(cfg1, w1, change(toks, 0, 32), FULL).logits[last],
    referenceForward(cfg1, w1, toks, FULL).logits[last],
    'full attention, token 0',
  );

  // 2 layers: receptive field is 2 (W - 1) back.
  const cfg2 = makeCfg({ nLayers: 2 });
  const w2 = new MapWeights(randomWeights(cfg2, 6));
  const base2 = referenceForward(cfg2, w2, toks, win).logits[last];
  const edge = last - 2 * (W - 1);
  assert.deepEqual(referenceForward(cfg2, w2, change(toks, edge - 1, 32), win).logits[last], base2, '2 layers, outside');
  assertDiffers(referenceForward(cfg2, w2, change(toks, edge, 32), win).logits[last], base2, '2 layers, edge');

  // Sinks: with sinks S the first S tokens stay visible; token S (outside window) does not.
  for (const S of [1, 2]) {
    const spec: AttentionSpec = { window: W, sinks: S };
    const b = referenceForward(cfg1, w1, toks, spec).logits[last];
    for (let j = 0; j < S; j++) assertDiffers(referenceForward(cfg1, w1, change(toks, j, 32), spec).logits[last], b, `sink ${j}`);
    assert.deepEqual(referenceForward(cfg1, w1, change(toks, S, 32), spec).logits[last], b, `token ${S} not a sink`);
  }
  // Window 1 = only self.
  const self = referenceForward(cfg1, w1, toks, { window: 1, sinks: 0 }, { wantProbs: true });
  for (const row of self.probs![0][0]) {
    assert.equal(row[row.length - 1], 1);
  }
});

test('(d) probs rows sum to 1 and are exactly zero on masked keys', () => {
  const cfg = makeCfg({ nKvHeads: 2 });
  const w = new MapWeights(randomWeights(cfg, 21));
  const toks = randomTokens(10, cfg.vocabSize, 22);
  const specs: AttentionSpec[] = [FULL, { window: 4, sinks: 0 }, { window: 3, sinks: 2 }, { window: 1, sinks: 1 }];
  for (const spec of specs) {
    const res = referenceForward(cfg, w, toks, spec, { wantProbs: true });
    assert.equal(res.probs!.length, cfg.nLayers);
    for (const layer of res.probs!) {
      assert.equal(layer.length, cfg.nHeads);
      for (const head of layer) {
        assert.equal(head.length, toks.length);
        head.forEach((row, q) => {
          assert.equal(row.length, q + 1);
          let sum = 0;
          for (let k = 0; k <= q; k++) {
            const seen = k <= q && (spec.window === null || q - k < spec.window || k < spec.sinks);
            if (seen) assert.ok(row[k] > 0, `visible key ${k} of query ${q} has prob ${row[k]}`);
            else assert.equal(row[k], 0, `masked key ${k} of query ${q} (${JSON.stringify(spec)})`);
            sum += row[k];
          }
          assert.ok(Math.abs(sum - 1) < 1e-12, `row sum ${sum}`);
        });
      }
    }
    assert.equal(referenceForward(cfg, w, toks, spec).probs, undefined);
  }
});

/** MHA weights from a GQA model: kv head g is copied to every query head h with floor(h / group) = g. */
function expandKv(cfg: ModelConfig, m: Map<string, Float32Array>, mapHead: (h: number) => number): Map<string, Float32Array> {
  const out = new Map(m);
  const { hiddenSize: H, headDim: hd, nHeads: nh } = cfg;
  for (let l = 0; l < cfg.nLayers; l++) {
    for (const proj of ['k_proj', 'v_proj']) {
      for (const [suffix, rowLen] of [
        ['weight', H],
        ['bias', 1],
      ] as const) {
        const name = `model.layers.${l}.self_attn.${proj}.${suffix}`;
        const src = m.get(name);
        if (!src) continue;
        const dst = new Float32Array(nh * hd * rowLen);
        for (let h = 0; h < nh; h++) {
          const g = mapHead(h);
          dst.set(src.subarray(g * hd * rowLen, (g + 1) * hd * rowLen), h * hd * rowLen);
        }
        out.set(name, dst);
      }
    }
  }
  return out;
}

test('(e) GQA equals MHA with duplicated kv heads (query head h uses kv head floor(h / group))', () => {
  for (const base of [
    makeCfg({ nKvHeads: 2 }),
    makeCfg({ nKvHeads: 1 }),
    makeCfg({ family: 'qwen2', nKvHeads: 2, attentionBias: true }),
    makeCfg({ nHeads: 8, nKvHeads: 2, headDim: 4 }),
  ]) {
    const m = randomWeights(base, 31 + base.nKvHeads);
    const toks = randomTokens(7, base.vocabSize, 32);
    const gqa = referenceForward(base, new MapWeights(m), toks, FULL).logits;
    const group = base.nHeads / base.nKvHeads;
    const mhaCfg = { ...base, nKvHeads: base.nHeads };
    const mha = referenceForward(mhaCfg, new MapWeights(expandKv(base, m, (h) => Math.floor(h / group))), toks, FULL).logits;
    assertClose(gqa, mha, 1e-12, `GQA ${base.nHeads}/${base.nKvHeads}`);
    if (base.nKvHeads > 1) {
      // The interleaved mapping (h mod nKv) is a different model: proves the comparison can fail.
      const wrong = referenceForward(mhaCfg, new MapWeights(expandKv(base, m, (h) => h % base.nKvHeads)), toks, FULL).logits;
      assertDiffers(wrong[6], gqa[6], 'interleaved kv mapping');
    }
  }
});

test('tied embeddings: lm_head = embed_tokens', () => {
  const tied = makeCfg({ tieWordEmbeddings: true, nKvHeads: 2 });
  const m = randomWeights(tied, 41);
  const toks = randomTokens(6, tied.vocabSize, 42);
  const a = referenceForward(tied, new MapWeights(m), toks, FULL).logits;
  const untiedM = new Map(m);
  untiedM.set('lm_head.weight', m.get('model.embed_tokens.weight')!);
  const b = referenceForward({ ...tied, tieWordEmbeddings: false }, new MapWeights(untiedM), toks, FULL).logits;
  assertClose(a, b, 0, 'tied vs explicit lm_head');
  // With tying off, a different lm_head is used.
  untiedM.set('lm_head.weight', randomWeights(tied, 43).get('model.embed_tokens.weight')!);
  const c = referenceForward({ ...tied, tieWordEmbeddings: false }, new MapWeights(untiedM), toks, FULL).logits;
  assertDiffers(c[0], a[0], 'untied lm_head');
});

// ---------------------------------------------------------------------------------------------------------------
// (f) RoPE

test('(f) shifting all rope positions by a constant leaves logits unchanged (full attention)', () => {
  for (const [ci, { name, cfg }] of configs.entries()) {
    const w = new MapWeights(randomWeights(cfg, 200 + ci));
    const toks = randomTokens(9, cfg.vocabSize, 201 + ci);
    const base = referenceForward(cfg, w, toks, FULL).logits;
    const shifted = referenceForward(cfg, w, toks, FULL, {
      positions: toks.map((_, i) => i + 37),
    }).logits;
    assertClose(shifted, base, 1e-9, `${name}: shift`);
    // Non-uniform positions (doubling the gaps) do change the result.
    const spread = referenceForward(cfg, w, toks, FULL, {
      positions: toks.map((_, i) => 2 * i),
    }).logits;
    assertDiffers(spread[8], base[8], `${name}: spread positions`);
  }
});

test('(f) window mask uses sequence indices, not rope positions', () => {
  const cfg = makeCfg({ nLayers: 1 });
  const w = new MapWeights(randomWeights(cfg, 51));
  const toks = randomTokens(8, cfg.vocabSize, 52);
  const spec: AttentionSpec = { window: 3, sinks: 1 };
  const a = referenceForward(cfg, w, toks, spec, { wantProbs: true });
  const b = referenceForward(cfg, w, toks, spec, {
    wantProbs: true,
    positions: toks.map((_, i) => 1000 + i),
  });
  assertClose(b.logits, a.logits, 1e-9, 'shifted positions with window');
  assert.deepEqual(
    b.probs![0][0][7].map((p) => (p === 0 ? 0 : 1)),
    Float64Array.from([1, 0, 0, 0, 0, 1, 1, 1]),
  );
});

test('(f) linear scaling equals unscaled rope at positions / factor', () => {
  const factor = 4;
  const scaled = makeCfg({ ropeScaling: { type: 'linear', factor } });
  const plain = makeCfg({ ropeScaling: null });
  const invS = ropeInvFreq(scaled);
  const invP = ropeInvFreq(plain);
  for (let i = 0; i < invP.length; i++) assert.ok(Math.abs(invS[i] - invP[i] / factor) < 1e-18);
  const m = randomWeights(plain, 61);
  const toks = randomTokens(8, plain.vocabSize, 62);
  const a = referenceForward(scaled, new MapWeights(m), toks, FULL).logits;
  const b = referenceForward(plain, new MapWeights(m), toks, FULL, {
    positions: toks.map((_, i) => i / factor),
  }).logits;
  assertClose(a, b, 1e-12, 'linear scaling');
  const c = referenceForward(plain, new MapWeights(m), toks, FULL).logits;
  assertDiffers(c[7], a[7], 'scaling matters');
});

test('(f) ropeInvFreq: default theta^(-2i/d); llama3 keeps high frequencies, divides low ones, blends between', () => {
  const d = 16;
  const theta = 10000;
  const plain = makeCfg({ headDim: d, ropeTheta: theta });
  const inv = ropeInvFreq(plain);
  assert.equal(inv.length, d / 2);
  assert.equal(inv[0], 1);
  assert.ok(Math.abs(inv[1] - Math.pow(10000, -2 / 16)) < 1e-15);
  assert.ok(Math.abs(inv[4] - 0.01) < 1e-15); // 10000^(-8/16)

  const sc: RopeScaling = {
    type: 'llama3',
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 64,
  };
  const l3 = ropeInvFreq(makeCfg({ headDim: d, ropeTheta: theta, ropeScaling: sc }));
  // low_freq_wavelen = 64 / 1 = 64, high_freq_wavelen = 64 / 4 = 16. wavelen_i = 2π 10000^(i/8):
  //   i=0: 6.28 (high: kept), i=1: 19.9 and i=2: 62.8 (medium: blended), i>=3: >= 198 (low: ÷ 8).
  const kinds = { high: 0, medium: 0, low: 0 };
  for (let i = 0; i < d / 2; i++) {
    const wl = (2 * Math.PI) / inv[i];
    if (wl < 16) {
      kinds.high++;
      assert.equal(l3[i], inv[i], `high-frequency ${i} unchanged`);
    } else if (wl > 64) {
      kinds.low++;
      assert.ok(Math.abs(l3[i] - inv[i] / 8) <= 1e-18, `low-frequency ${i} divided by factor`);
    } else {
      kinds.medium++;
      const smooth = (64 / wl - 1) / (4 - 1);
      assert.ok(smooth > 0 && smooth < 1);
      const want = ((1 - smooth) * inv[i]) / 8 + smooth * inv[i];
      assert.ok(Math.abs(l3[i] - want) < 1e-15, `medium ${i}`);
      assert.ok(l3[i] > inv[i] / 8 && l3[i] < inv[i]);
    }
  }
  assert.deepEqual(kinds, { high: 1, medium: 2, low: 5 });
  // i=1 by hand: wavelen = 2π·10^(1/2) ≈ 19.869; smooth = (64/19.869 - 1)/3 ≈ 0.7404; inv ≈ 0.316228.
  assert.ok(Math.abs(l3[1] - 0.316228 * (0.2596 / 8 + 0.7404)) < 2e-5);
});

test('rejects malformed inputs', () => {
  const cfg = makeCfg({ nLayers: 1 });
  const m = randomWeights(cfg, 71);
  assert.throws(() => referenceForward(cfg, new MapWeights(m), [cfg.vocabSize], FULL), /token/);
  assert.throws(
    () =>
      referenceForward(cfg, new MapWeights(m), [0, 1], FULL, {
        positions: [0],
      }),
    /positions/,
  );
  const bad = new Map(m);
  bad.set('model.layers.0.self_attn.q_proj.weight', new Float32Array(3));
  assert.throws(() => referenceForward(cfg, new MapWeights(bad), [0], FULL), /q_proj/);
});
