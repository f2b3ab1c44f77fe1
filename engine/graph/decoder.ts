// Builds the decoder-only transformer (Llama / Qwen2 / Mistral) as one ONNX graph from a ModelConfig and its weights.
import type { Checkpoint, ModelConfig } from '../types';
import { hasOutputBias } from '../safetensors';
import { onnx } from 'onnx-proto';
import { GraphBuilder } from './onnx';
import { IO, W } from './io';

export interface DecoderGraphOptions {
  /**
   * 'window': attention limited by GQA's `local_window_size` alone (no sinks, no retrieved blocks).
   * 'bias': an `attention_bias` input carries the mask, so sinks and retrieved blocks can stay visible.
   */
  readonly mask: { readonly kind: 'window'; readonly window: number | null } | { readonly kind: 'bias' };
  /** Export per-layer attention probabilities (`attentions.{i}`) for attribution. */
  readonly attentions: boolean;
  /** Export per-layer rotated queries (`queries.{i}`) for block retrieval. */
  readonly queries: boolean;
  /**
   * Matmul weights: 'f32' (default, exact), or block-quantised 'int8' / 'int4' (32 per block, one fp32 scale each) run by
   * com.microsoft MatMulNBits with accuracy_level 4 (int8 activations): 4x / 8x less weight memory and traffic.
   */
  readonly weights?: WeightFormat;
}

export type WeightFormat = 'f32' | 'int8' | 'int4';

const QUANT_BLOCK = 32;

/**
 * Symmetric block quantisation of an (n, k) row-major matrix to MatMulNBits' layout: B (n, blocks, block * bits / 8)
 * uint8 (4-bit: even k in the low nibble) and scales (n * blocks); the implicit zero point is 2^(bits-1).
 */
export function quantizeBlocks(w: Float32Array, n: number, k: number, bits: 4 | 8): { b: Uint8Array; scales: Float32Array } {
  const blocks = Math.ceil(k / QUANT_BLOCK);
  const blob = (QUANT_BLOCK * bits) / 8;
  const b = new Uint8Array(n * blocks * blob);
  const scales = new Float32Array(n * blocks);
  const zero = 1 << (bits - 1);
  const qmax = zero - 1;
  for (let r = 0; r < n; r++) {
    for (let blk = 0; blk < blocks; blk++) {
      const k0 = blk * QUANT_BLOCK;
      const k1 = Math.min(k, k0 + QUANT_BLOCK);
      let amax = 0;
      for (let i = k0; i < k1; i++) amax = Math.max(amax, Math.abs(w[r * k + i]));
      const scale = amax / qmax;
      scales[r * blocks + blk] = scale;
      const inv = scale === 0 ? 0 : 1 / scale;
      const at = (r * blocks + blk) * blob;
      for (let j = 0; j < QUANT_BLOCK; j++) {
        // Padding past k (k not a multiple of the block) dequantises to 0.
        const q = k0 + j < k1 ? Math.max(0, Math.min(2 * zero - 1, Math.round(w[r * k + k0 + j] * inv) + zero)) : zero;
        if (bits === 8) b[at + j] = q;
        else b[at + (j >> 1)] |= (j & 1) === 0 ? q : q << 4;
      }
    }
  }
  return { b, scales };
}

/** Rotary inverse frequencies with the config's scaling applied (float64 math, stored as float32 like HF). */
export function ropeInverseFrequencies(cfg: ModelConfig): Float32Array {
  const half = cfg.headDim / 2;
  const inv = new Float32Array(half);
  const s = cfg.ropeScaling;
  for (let i = 0; i < half; i++) {
    let f = Math.pow(cfg.ropeTheta, -(2 * i) / cfg.headDim);
    if (s?.type === 'linear') f /= s.factor;
    else if (s?.type === 'llama3') {
      const wavelen = (2 * Math.PI) / f;
      const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
      const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
      if (wavelen > lowWavelen) f /= s.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        f = (1 - smooth) * (f / s.factor) + smooth * f;
      }
    }
    inv[i] = f;
  }
  return inv;
}

/**
 * (out, in) row-major Linear weights -> one (in, sum(out)) matrix for x @ W. Tile by tile: element by element, the
 * writes stride a whole row apart and miss the cache each time (random-100m's twelve layers: 320-420 ms element by
 * element, 175-245 ms by tiles, measured alone).
 */
export function transposeConcat(parts: readonly Float32Array[], outs: readonly number[], inDim: number): Float32Array {
  const total = outs.reduce((a, b) => a + b, 0);
  const t = new Float32Array(inDim * total);
  let col0 = 0;
  parts.forEach((w, p) => {
    transposeInto(w, outs[p], inDim, t, total, col0);
    col0 += outs[p];
  });
  return t;
}

const TRANSPOSE_TILE = 64;

/** Writes w (nOut, inDim) transposed into t (inDim, total) at columns col0.. */
function transposeInto(w: Float32Array, nOut: number, inDim: number, t: Float32Array, total: number, col0: number): void {
  for (let o0 = 0; o0 < nOut; o0 += TRANSPOSE_TILE) {
    const o1 = Math.min(o0 + TRANSPOSE_TILE, nOut);
    for (let i0 = 0; i0 < inDim; i0 += TRANSPOSE_TILE) {
      const i1 = Math.min(i0 + TRANSPOSE_TILE, inDim);
      for (let i = i0; i < i1; i++) {
        const dst = i * total + col0;
        for (let o = o0; o < o1; o++) t[dst + o] = w[o * inDim + i];
      }
    }
  }
}

/**
 * The graph. Inputs: input_ids, position_ids (1, seq) int64; past_key_values.{i}.key|value (1, nKvHeads, past, headDim);
 * num_logits_to_keep () int64; attention_bias (1, 1, seq, past + seq) when mask.kind = 'bias'; output_attentions () bool
 * when built with attentions.
 * Outputs: logits (1, keep, vocab), present.{i}.key|value (1, nKvHeads, past + seq, headDim), attentions.{i}.
 * `externalFile`: write the weights there (ONNX external data); the model bytes must then be saved in the same folder.
 */
export function buildDecoderGraph(cfg: ModelConfig, ckpt: Checkpoint, opts: DecoderGraphOptions, externalFile?: string): Uint8Array {
  // With an external file each weight is written out as soon as it is built, so building holds one weight at a time.
  const g = new GraphBuilder(externalFile ?? null);
  const { hiddenSize: h, nHeads, nKvHeads, headDim: d, intermediateSize: inter, vocabSize: vocab } = cfg;
  const qDim = nHeads * d;
  const kvDim = nKvHeads * d;

  const inputIds = g.input(IO.inputIds, 'int64', [1, 'seq']);
  const positionIds = g.input(IO.positionIds, 'int64', [1, 'seq']);
  const keep = g.input(IO.numLogitsToKeep, 'int64', []);
  const bias = opts.mask.kind === 'bias' ? g.input(IO.attentionBias, 'float32', [1, 1, 'seq', 'total']) : '';
  const outputAttentions = opts.attentions ? g.input(IO.outputAttentions, 'bool', []) : '';
  for (let l = 0; l < cfg.nLayers; l++) {
    g.input(IO.pastKey(l), 'float32', [1, nKvHeads, 'past', d]);
    g.input(IO.pastValue(l), 'float32', [1, nKvHeads, 'past', d]);
  }

  // Constants shared by all layers.
  const zero = g.initI64('c_zero', [0]);
  const one = g.initI64('c_one', [1]);
  const two = g.initI64('c_two', [2]);
  const axisLast = g.initI64('c_axis_last', [-1]);
  const axis3 = g.initI64('c_axis3', [3]);
  const halfD = g.initI64('c_half_d', [d / 2]);
  const fullD = g.initI64('c_full_d', [d]);
  const bigEnd = g.initI64('c_big_end', [Number.MAX_SAFE_INTEGER]);

  // GQA wants seqlens_k = total - 1 (int32, shape (1)) and total_sequence_length (int32 scalar).
  const pastLen = g.op('Slice', [g.op('Shape', [IO.pastKey(0)]), two, g.initI64('c_three', [3])]);
  const seqLen = g.op('Slice', [g.op('Shape', [inputIds]), one, two]);
  const total64 = g.op('Add', [pastLen, seqLen]);
  const seqlensK = g.op('Cast', [g.op('Sub', [total64, one])], { to: 6 });
  const totalLen = g.op('Cast', [g.op('Squeeze', [total64, zero])], { to: 6 });

  // Rotary tables for the given positions, computed in fp32 like HF: angle = position * inv_freq.
  const invFreq = g.initF32('rope_inv_freq', [d / 2], ropeInverseFrequencies(cfg));
  const posF = g.op('Cast', [positionIds], { to: 1 }); // (1, seq)
  const freqs = g.op('Mul', [g.op('Unsqueeze', [posF, axisLast]), invFreq]); // (1, seq, d/2)
  const emb = g.op('Concat', [freqs, freqs], { axis: -1 }); // (1, seq, d)
  const cos = g.op('Unsqueeze', [g.op('Cos', [emb]), two]); // (1, seq, 1, d)
  const sin = g.op('Unsqueeze', [g.op('Sin', [emb]), two]);
  const headsShape = g.initI64('c_heads_shape', [0, 0, -1, d]);
  const flatShape = g.initI64('c_flat_shape', [0, 0, -1]);
  const rope = (x: string): string => {
    const xr = g.op('Reshape', [x, headsShape]); // (1, seq, n, d)
    const x1 = g.op('Slice', [xr, zero, halfD, axis3]);
    const x2 = g.op('Slice', [xr, halfD, fullD, axis3]);
    const rotated = g.op('Concat', [g.op('Neg', [x2]), x1], { axis: 3 });
    const out = g.op('Add', [g.op('Mul', [xr, cos]), g.op('Mul', [rotated, sin])]);
    return g.op('Reshape', [out, flatShape]);
  };

  const format = opts.weights ?? 'f32';
  /**
   * x @ W^T for Linear weights given as (out, in) row-major parts stacked along out (fused QKV, gate+up).
   * f32: one transposed (in, sum(out)) initializer for MatMul. intN: the rows as they are, block-quantised.
   */
  const linear = (
    name: string,
    x: string,
    parts: readonly Float32Array[],
    outs: readonly number[],
    inDim: number,
    output?: string,
  ): string => {
    const nOut = outs.reduce((a, b) => a + b, 0);
    const y = output ?? g.tmp('linear');
    if (format === 'f32') {
      g.node({
        op: 'MatMul',
        inputs: [x, g.initF32(`${name}.weight_t`, [inDim, nOut], transposeConcat(parts, outs, inDim))],
        outputs: [y],
      });
      return y;
    }
    let rows = parts[0];
    if (parts.length > 1) {
      rows = new Float32Array(nOut * inDim);
      let at = 0;
      for (const p of parts) {
        rows.set(p, at);
        at += p.length;
      }
    }
    const bits = format === 'int4' ? 4 : 8;
    const { b, scales } = quantizeBlocks(rows, nOut, inDim, bits);
    const blocks = Math.ceil(inDim / QUANT_BLOCK);
    g.node({
      op: 'MatMulNBits',
      domain: 'com.microsoft',
      inputs: [
        x,
        g.initU8(`${name}.qweight`, [nOut, blocks, (QUANT_BLOCK * bits) / 8], b),
        g.initF32(`${name}.scales`, [nOut * blocks], scales),
      ],
      outputs: [y],
      attrs: { K: inDim, N: nOut, bits, block_size: QUANT_BLOCK, accuracy_level: 4 },
    });
    return y;
  };

  const embed = ckpt.readF32(W.embed, [vocab, h]);
  const embedInit = g.initF32(W.embed, [vocab, h], embed);
  let hidden = g.op('Gather', [embedInit, inputIds], { axis: 0 }); // (1, seq, h)
  let pending = ''; // sub-layer output not yet added to the residual stream
  const eps = { float: cfg.rmsNormEps };

  /** RMSNorm of (residual + pending); returns [normed, new residual]. */
  const norm = (weightName: string): [string, string] => {
    const weight = g.initF32(weightName, [h], ckpt.readF32(weightName, [h]));
    if (pending === '') {
      const out = g.op('SimplifiedLayerNormalization', [hidden, weight], { axis: -1, epsilon: eps });
      return [out, hidden];
    }
    const out = g.tmp('norm');
    const sum = g.tmp('residual');
    g.node({
      op: 'SkipSimplifiedLayerNormalization',
      domain: 'com.microsoft',
      inputs: [pending, hidden, weight],
      outputs: [out, '', '', sum],
      attrs: { epsilon: eps },
    });
    return [out, sum];
  };

  for (let l = 0; l < cfg.nLayers; l++) {
    let normed: string;
    [normed, hidden] = norm(W.inputNorm(l));

    // Q, K, V in one MatMul: (1, seq, h) @ (h, qDim + 2 kvDim).
    const wq = ckpt.readF32(W.proj(l, 'q'), [qDim, h]);
    const wk = ckpt.readF32(W.proj(l, 'k'), [kvDim, h]);
    const wv = ckpt.readF32(W.proj(l, 'v'), [kvDim, h]);
    let qkv = linear(`layers.${l}.qkv`, normed, [wq, wk, wv], [qDim, kvDim, kvDim], h);
    if (cfg.attentionBias) {
      const b = new Float32Array(qDim + 2 * kvDim);
      b.set(ckpt.readF32(W.projBias(l, 'q'), [qDim]), 0);
      b.set(ckpt.readF32(W.projBias(l, 'k'), [kvDim]), qDim);
      b.set(ckpt.readF32(W.projBias(l, 'v'), [kvDim]), qDim + kvDim);
      qkv = g.op('Add', [qkv, g.initF32(`layers.${l}.qkv.bias`, [qDim + 2 * kvDim], b)]);
    }
    const [q, k, v] = [g.tmp('q'), g.tmp('k'), g.tmp('v')];
    g.node({
      op: 'Split',
      inputs: [qkv, g.initI64(`layers.${l}.qkv.split`, [qDim, kvDim, kvDim])],
      outputs: [q, k, v],
      attrs: { axis: -1 },
    });

    const qRot = opts.queries ? IO.queries(l) : g.tmp('q_rot');
    g.node({ op: 'Identity', inputs: [rope(q)], outputs: [qRot] });
    const attnOut = g.tmp('attn');
    // query, key, value, past_key, past_value, seqlens_k, total_sequence_length, cos, sin, position_ids, attention_bias
    const gqaInputs = [qRot, rope(k), v, IO.pastKey(l), IO.pastValue(l), seqlensK, totalLen, '', '', '', bias];
    const gqaAttrs = {
      num_heads: nHeads,
      kv_num_heads: nKvHeads,
      local_window_size: opts.mask.kind === 'window' && opts.mask.window !== null ? opts.mask.window : -1,
    };
    if (!opts.attentions) {
      g.node({
        op: 'GroupQueryAttention',
        domain: 'com.microsoft',
        inputs: gqaInputs,
        outputs: [attnOut, IO.presentKey(l), IO.presentValue(l)],
        attrs: gqaAttrs,
      });
    } else {
      // Probabilities cost a (heads, seq, past + seq) output per layer — 640 MB per 256-token chunk of a 100M model at a
      // 4k window — that only attribution reads. An If on `output_attentions` picks GQA with or without them per run.
      const branch = (withProbs: boolean): ReturnType<GraphBuilder['toSubgraph']> => {
        const b = new GraphBuilder();
        const tag = `${withProbs ? 'with' : 'without'}_probs_${l}`;
        const outs = [`attn_${tag}`, `present_key_${tag}`, `present_value_${tag}`, `attentions_${tag}`];
        if (withProbs) {
          b.node({
            op: 'GroupQueryAttention',
            domain: 'com.microsoft',
            inputs: gqaInputs,
            outputs: outs,
            attrs: { ...gqaAttrs, qk_output: 2 },
          });
        } else {
          b.node({ op: 'GroupQueryAttention', domain: 'com.microsoft', inputs: gqaInputs, outputs: outs.slice(0, 3), attrs: gqaAttrs });
          const empty = { dataType: onnx.TensorProto.DataType.FLOAT, dims: [1, nHeads, 0, 0] };
          b.node({ op: 'Constant', inputs: [], outputs: [outs[3]], attrs: { value: { tensor: empty } } });
        }
        return b.toSubgraph(
          tag,
          outs.map((name) => ({ name, type: 'float32' as const })),
        );
      };
      g.node({
        op: 'If',
        inputs: [outputAttentions],
        outputs: [attnOut, IO.presentKey(l), IO.presentValue(l), IO.attentions(l)],
        attrs: { then_branch: { graph: branch(true) }, else_branch: { graph: branch(false) } },
      });
    }
    const wo = ckpt.readF32(W.proj(l, 'o'), [h, qDim]);
    pending = linear(`layers.${l}.o`, attnOut, [wo], [h], qDim);
    if (hasOutputBias(cfg)) pending = g.op('Add', [pending, g.initF32(W.projBias(l, 'o'), [h], ckpt.readF32(W.projBias(l, 'o'), [h]))]);

    [normed, hidden] = norm(W.postNorm(l));
    const wg = ckpt.readF32(W.mlp(l, 'gate'), [inter, h]);
    const wu = ckpt.readF32(W.mlp(l, 'up'), [inter, h]);
    const gateUp = linear(`layers.${l}.gate_up`, normed, [wg, wu], [inter, inter], h);
    const [gate, up] = [g.tmp('gate'), g.tmp('up')];
    g.node({
      op: 'Split',
      inputs: [gateUp, g.initI64(`layers.${l}.gate_up.split`, [inter, inter])],
      outputs: [gate, up],
      attrs: { axis: -1 },
    });
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
    const wd = ckpt.readF32(W.mlp(l, 'down'), [h, inter]);
    pending = linear(`layers.${l}.down`, act, [wd], [h], inter);
  }

  const [finalNormed] = norm(W.finalNorm);
  // Only the last `num_logits_to_keep` positions reach the LM head.
  const start = g.op('Neg', [g.op('Unsqueeze', [keep, zero])]);
  const lastHidden = g.op('Slice', [finalNormed, start, bigEnd, one]);
  const lmHead = cfg.tieWordEmbeddings ? embed : ckpt.readF32(W.lmHead, [vocab, h]);
  linear('lm_head', lastHidden, [lmHead], [vocab], h, IO.logits);

  g.output(IO.logits, 'float32', [1, 'keep', vocab]);
  for (let l = 0; l < cfg.nLayers; l++) {
    g.output(IO.presentKey(l), 'float32', [1, nKvHeads, 'total', d]);
    g.output(IO.presentValue(l), 'float32', [1, nKvHeads, 'total', d]);
    if (opts.attentions) g.output(IO.attentions(l), 'float32', [1, nHeads, 'seq', 'total']);
    if (opts.queries) g.output(IO.queries(l), 'float32', [1, 'seq', nHeads * d]);
  }
  return g.toBytes(`attend-${cfg.family}-decoder`);
}
