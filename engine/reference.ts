// Independent reference forward pass for Llama / Qwen2 / Mistral decoders: float64, naive loops, written straight
// from the math. It is the oracle the ONNX runtime is tested against, so it shares nothing with the runtime except
// the contracts in types.ts. Speed is not a goal; clarity is.

import type { AttentionSpec, ModelConfig } from './types';

/** Read access to HF-named tensors as float32, row-major as stored (a Linear weight is (out, in)). */
export interface ReferenceWeights {
  get(name: string): Float32Array;
}

export interface ReferenceResult {
  /** One (vocab) row per input position. */
  logits: Float64Array[];
  /**
   * Attention probabilities, probs[layer][head][queryIndex] = Float64Array over key positions 0..queryIndex
   * (length queryIndex + 1, exactly zero where masked).
   */
  probs?: Float64Array[][][];
}

/** RoPE inverse frequencies (length headDim / 2) with the config's rope scaling applied. */
export function ropeInvFreq(cfg: ModelConfig): Float64Array {
  const d = cfg.headDim;
  if (d % 2 !== 0) throw new Error(`reference: headDim ${d} must be even for RoPE`);
  const half = d / 2;
  const inv = new Float64Array(half);
  // inv_freq[i] = theta^(-2i/d)
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(cfg.ropeTheta, (2 * i) / d);

  const s = cfg.ropeScaling;
  if (s === null) return inv;
  if (s.type === 'linear') {
    // Linear (position interpolation): every frequency divided by the factor, i.e. positions / factor.
    for (let i = 0; i < half; i++) inv[i] = inv[i] / s.factor;
    return inv;
  }
  if (s.type === 'llama3') {
    // HF _compute_llama3_parameters: long wavelengths are interpolated (÷ factor), short ones kept, a smooth
    // blend in between.
    const lowFreqWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highFreqWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i];
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highFreqWavelen) {
        inv[i] = f;
      } else if (wavelen > lowFreqWavelen) {
        inv[i] = f / s.factor;
      } else {
        const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = ((1 - smooth) * f) / s.factor + smooth * f;
      }
    }
    return inv;
  }
  const never: never = s;
  throw new Error(`reference: unsupported rope scaling ${JSON.stringify(never)}`);
}

// ---------------------------------------------------------------------------------------------------------------
// small float64 helpers (kept local: this file must not share code with the runtime)

function widen(w: ReferenceWeights, name: string, expectLen: number): Float64Array {
  const src = w.get(name);
  if (!src) throw new Error(`reference: missing tensor ${name}`);
  if (src.length !== expectLen) {
    throw new Error(`reference: tensor ${name} has ${src.length} elements, expected ${expectLen}`);
  }
  return Float64Array.from(src);
}

/** y = W x (+ b), W is (out, in) row-major. */
function linear(W: Float64Array, x: Float64Array, out: number, b: Float64Array | null): Float64Array {
  const inDim = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let acc = 0;
    const row = o * inDim;
    for (let i = 0; i < inDim; i++) acc += W[row + i] * x[i];
    y[o] = b ? acc + b[o] : acc;
  }
  return y;
}

function rmsnorm(x: Float64Array, weight: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const r = 1 / Math.sqrt(ss / x.length + eps);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = x[i] * r * weight[i];
  return y;
}

/** HF rotate_half RoPE on one head vector of dim d: pairs (i, i + d/2) rotated by pos * invFreq[i]. */
function rope(x: Float64Array, cos: Float64Array, sin: Float64Array): Float64Array {
  const half = x.length / 2;
  const y = new Float64Array(x.length);
  for (let i = 0; i < half; i++) {
    const a = x[i];
    const b = x[i + half];
    y[i] = a * cos[i] - b * sin[i];
    y[i + half] = b * cos[i] + a * sin[i];
  }
  return y;
}

function silu(z: number): number {
  return z / (1 + Math.exp(-z));
}

function visible(q: number, k: number, attn: AttentionSpec): boolean {
  return k <= q && (attn.window === null || q - k < attn.window || k < attn.sinks);
}

// ---------------------------------------------------------------------------------------------------------------

export function referenceForward(
  cfg: ModelConfig,
  w: ReferenceWeights,
  tokens: number[],
  attn: AttentionSpec,
  opts?: { positions?: number[]; wantProbs?: boolean },
): ReferenceResult {
  const n = tokens.length;
  const H = cfg.hiddenSize;
  const nh = cfg.nHeads;
  const nkv = cfg.nKvHeads;
  const hd = cfg.headDim;
  const I = cfg.intermediateSize;
  const V = cfg.vocabSize;
  if (nkv <= 0 || nh % nkv !== 0) throw new Error(`reference: nHeads ${nh} not a multiple of nKvHeads ${nkv}`);
  if (attn.window !== null && attn.window < 1) throw new Error(`reference: window ${attn.window} must be >= 1`);
  const group = nh / nkv;
  const positions = opts?.positions ?? tokens.map((_, i) => i);
  if (positions.length !== n) throw new Error(`reference: ${positions.length} positions for ${n} tokens`);
  const wantProbs = opts?.wantProbs === true;

  // Embedding lookup.
  const embed = w.get('model.embed_tokens.weight');
  if (!embed || embed.length !== V * H) throw new Error(`reference: model.embed_tokens.weight is not (${V}, ${H})`);
  let xs: Float64Array[] = tokens.map((t) => {
    if (!Number.isInteger(t) || t < 0 || t >= V) throw new Error(`reference: token ${t} out of range [0, ${V})`);
    const row = new Float64Array(H);
    for (let i = 0; i < H; i++) row[i] = embed[t * H + i];
    return row;
  });

  // cos/sin per position (rope positions may differ from sequence indices).
  const inv = ropeInvFreq(cfg);
  const cosAt: Float64Array[] = [];
  const sinAt: Float64Array[] = [];
  for (let p = 0; p < n; p++) {
    const c = new Float64Array(hd / 2);
    const s = new Float64Array(hd / 2);
    for (let i = 0; i < hd / 2; i++) {
      const angle = positions[p] * inv[i];
      c[i] = Math.cos(angle);
      s[i] = Math.sin(angle);
    }
    cosAt.push(c);
    sinAt.push(s);
  }

  const probs: Float64Array[][][] = [];
  const scale = 1 / Math.sqrt(hd);

  for (let l = 0; l < cfg.nLayers; l++) {
    const p = `model.layers.${l}.`;
    const inNorm = widen(w, p + 'input_layernorm.weight', H);
    const postNorm = widen(w, p + 'post_attention_layernorm.weight', H);
    const Wq = widen(w, p + 'self_attn.q_proj.weight', nh * hd * H);
    const Wk = widen(w, p + 'self_attn.k_proj.weight', nkv * hd * H);
    const Wv = widen(w, p + 'self_attn.v_proj.weight', nkv * hd * H);
    const Wo = widen(w, p + 'self_attn.o_proj.weight', H * nh * hd);
    const bq = cfg.attentionBias ? widen(w, p + 'self_attn.q_proj.bias', nh * hd) : null;
    const bk = cfg.attentionBias ? widen(w, p + 'self_attn.k_proj.bias', nkv * hd) : null;
    const bv = cfg.attentionBias ? widen(w, p + 'self_attn.v_proj.bias', nkv * hd) : null;
    // HF Llama with attention_bias biases o_proj too; Qwen2 biases q/k/v only.
    const bo = cfg.attentionBias && cfg.family === 'llama' ? widen(w, p + 'self_attn.o_proj.bias', H) : null;
    const Wg = widen(w, p + 'mlp.gate_proj.weight', I * H);
    const Wu = widen(w, p + 'mlp.up_proj.weight', I * H);
    const Wd = widen(w, p + 'mlp.down_proj.weight', H * I);

    // Projections + RoPE for every position: q[t][head], k[t][kvHead], v[t][kvHead], each a Float64Array(hd).
    const Q: Float64Array[][] = [];
    const K: Float64Array[][] = [];
    const Vv: Float64Array[][] = [];
    for (let t = 0; t < n; t++) {
      const nx = rmsnorm(xs[t], inNorm, cfg.rmsNormEps);
      const q = linear(Wq, nx, nh * hd, bq);
      const k = linear(Wk, nx, nkv * hd, bk);
      const v = linear(Wv, nx, nkv * hd, bv);
      const qh: Float64Array[] = [];
      for (let h = 0; h < nh; h++) qh.push(rope(q.slice(h * hd, (h + 1) * hd), cosAt[t], sinAt[t]));
      const kh: Float64Array[] = [];
      const vh: Float64Array[] = [];
      for (let g = 0; g < nkv; g++) {
        kh.push(rope(k.slice(g * hd, (g + 1) * hd), cosAt[t], sinAt[t]));
        vh.push(v.slice(g * hd, (g + 1) * hd));
      }
      Q.push(qh);
      K.push(kh);
      Vv.push(vh);
    }

    const layerProbs: Float64Array[][] = [];
    for (let h = 0; h < nh; h++) layerProbs.push([]);

    const next: Float64Array[] = [];
    for (let t = 0; t < n; t++) {
      // Concatenated head outputs, (nh * hd).
      const ctx = new Float64Array(nh * hd);
      for (let h = 0; h < nh; h++) {
        const g = Math.floor(h / group);
        const pr = new Float64Array(t + 1);
        let max = -Infinity;
        const scores = new Float64Array(t + 1);
        for (let k = 0; k <= t; k++) {
          if (!visible(t, k, attn)) continue;
          let dot = 0;
          for (let i = 0; i < hd; i++) dot += Q[t][h][i] * K[k][g][i];
          scores[k] = dot * scale;
          if (scores[k] > max) max = scores[k];
        }
        let sum = 0;
        for (let k = 0; k <= t; k++) {
          if (!visible(t, k, attn)) continue;
          pr[k] = Math.exp(scores[k] - max);
          sum += pr[k];
        }
        for (let k = 0; k <= t; k++) pr[k] /= sum;
        for (let k = 0; k <= t; k++) {
          if (pr[k] === 0) continue;
          for (let i = 0; i < hd; i++) ctx[h * hd + i] += pr[k] * Vv[k][g][i];
        }
        if (wantProbs) layerProbs[h].push(pr);
      }
      const o = linear(Wo, ctx, H, bo);
      const hRes = new Float64Array(H);
      for (let i = 0; i < H; i++) hRes[i] = xs[t][i] + o[i];

      const m = rmsnorm(hRes, postNorm, cfg.rmsNormEps);
      const gate = linear(Wg, m, I, null);
      const up = linear(Wu, m, I, null);
      const act = new Float64Array(I);
      for (let j = 0; j < I; j++) act[j] = silu(gate[j]) * up[j];
      const down = linear(Wd, act, H, null);
      const out = new Float64Array(H);
      for (let i = 0; i < H; i++) out[i] = hRes[i] + down[i];
      next.push(out);
    }
    xs = next;
    if (wantProbs) probs.push(layerProbs);
  }

  const finalNorm = widen(w, 'model.norm.weight', H);
  const head = cfg.tieWordEmbeddings ? widen(w, 'model.embed_tokens.weight', V * H) : widen(w, 'lm_head.weight', V * H);
  const logits = xs.map((x) => linear(head, rmsnorm(x, finalNorm, cfg.rmsNormEps), V, null));
  return wantProbs ? { logits, probs } : { logits };
}
