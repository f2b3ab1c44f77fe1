// Builds the decoder-only transformer (Llama / Qwen2 / Mistral) as one ONNX graph from a ModelConfig and its weights.
import type { Checkpoint, ModelConfig } from '../types';
import { hasOutputBias } from '../safetensors';
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

/** (out, in) row-major Linear weights -> one (in, sum(out)) matrix for x @ W. */
function transposeConcat(parts: readonly Float32Array[], outs: readonly number[], inDim: number): Float32Array {
  const total = outs.reduce((a, b) => a + b, 0);
  const t = new Float32Array(inDim * total);
  let col0 = 0;
  parts.forEach((w, p) => {
    const nOut = outs[p];
    for (let o = 0; o < nOut; o++) {
      const row = o * inDim;
      for (let i = 0; i < inDim; i++) t[i * total + col0 + o] = w[row + i];
    }
    col0 += nOut;
  });
  return t;
}

/**
 * The graph. Inputs: input_ids, position_ids (1, seq) int64; past_key_values.{i}.key|value (1, nKvHeads, past, headDim);
 * num_logits_to_keep () int64; attention_bias (1, 1, seq, past + seq) when mask.kind = 'bias'.
 * Outputs: logits (1, keep, vocab), present.{i}.key|value (1, nKvHeads, past + seq, headDim), attentions.{i}.
 */
export function buildDecoderGraph(cfg: ModelConfig, ckpt: Checkpoint, opts: DecoderGraphOptions): Uint8Array {
  const g = new GraphBuilder();
  const { hiddenSize: h, nHeads, nKvHeads, headDim: d, intermediateSize: inter, vocabSize: vocab } = cfg;
  const qDim = nHeads * d;
  const kvDim = nKvHeads * d;

  const inputIds = g.input(IO.inputIds, 'int64', [1, 'seq']);
  const positionIds = g.input(IO.positionIds, 'int64', [1, 'seq']);
  const keep = g.input(IO.numLogitsToKeep, 'int64', []);
  const bias = opts.mask.kind === 'bias' ? g.input(IO.attentionBias, 'float32', [1, 1, 'seq', 'total']) : '';
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
    const wqkv = g.initF32(`layers.${l}.qkv.weight_t`, [h, qDim + 2 * kvDim], transposeConcat([wq, wk, wv], [qDim, kvDim, kvDim], h));
    let qkv = g.op('MatMul', [normed, wqkv]);
    if (cfg.attentionBias) {
      const b = new Float32Array(qDim + 2 * kvDim);
      b.set(ckpt.readF32(W.projBias(l, 'q'), [qDim]), 0);
      b.set(ckpt.readF32(W.projBias(l, 'k'), [kvDim]), qDim);
      b.set(ckpt.readF32(W.projBias(l, 'v'), [kvDim]), qDim + kvDim);
      qkv = g.op('Add', [qkv, g.initF32(`layers.${l}.qkv.bias`, [qDim + 2 * kvDim], b)]);
    }
    const [q, k, v] = [g.tmp('q'), g.tmp('k'), g.tmp('v')];
    g.node({ op: 'Split', inputs: [qkv, g.initI64(`layers.${l}.qkv.split`, [qDim, kvDim, kvDim])], outputs: [q, k, v], attrs: { axis: -1 } });

    const qRot = opts.queries ? IO.queries(l) : g.tmp('q_rot');
    g.node({ op: 'Identity', inputs: [rope(q)], outputs: [qRot] });
    const attnOut = g.tmp('attn');
    g.node({
      op: 'GroupQueryAttention',
      domain: 'com.microsoft',
      // query, key, value, past_key, past_value, seqlens_k, total_sequence_length, cos, sin, position_ids, attention_bias
      inputs: [qRot, rope(k), v, IO.pastKey(l), IO.pastValue(l), seqlensK, totalLen, '', '', '', bias],
      outputs: [attnOut, IO.presentKey(l), IO.presentValue(l), opts.attentions ? IO.attentions(l) : ''],
      attrs: {
        num_heads: nHeads,
        kv_num_heads: nKvHeads,
        local_window_size: opts.mask.kind === 'window' && opts.mask.window !== null ? opts.mask.window : -1,
        ...(opts.attentions ? { qk_output: 2 } : {}),
      },
    });
    const wo = ckpt.readF32(W.proj(l, 'o'), [h, qDim]);
    pending = g.op('MatMul', [attnOut, g.initF32(`layers.${l}.o.weight_t`, [qDim, h], transposeConcat([wo], [h], qDim))]);
    if (hasOutputBias(cfg)) pending = g.op('Add', [pending, g.initF32(W.projBias(l, 'o'), [h], ckpt.readF32(W.projBias(l, 'o'), [h]))]);

    [normed, hidden] = norm(W.postNorm(l));
    const wg = ckpt.readF32(W.mlp(l, 'gate'), [inter, h]);
    const wu = ckpt.readF32(W.mlp(l, 'up'), [inter, h]);
    const gateUp = g.op('MatMul', [normed, g.initF32(`layers.${l}.gate_up.weight_t`, [h, 2 * inter], transposeConcat([wg, wu], [inter, inter], h))]);
    const [gate, up] = [g.tmp('gate'), g.tmp('up')];
    g.node({ op: 'Split', inputs: [gateUp, g.initI64(`layers.${l}.gate_up.split`, [inter, inter])], outputs: [gate, up], attrs: { axis: -1 } });
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
    const wd = ckpt.readF32(W.mlp(l, 'down'), [h, inter]);
    pending = g.op('MatMul', [act, g.initF32(`layers.${l}.down.weight_t`, [inter, h], transposeConcat([wd], [h], inter))]);
  }

  const [finalNormed] = norm(W.finalNorm);
  // Only the last `num_logits_to_keep` positions reach the LM head.
  const start = g.op('Neg', [g.op('Unsqueeze', [keep, zero])]);
  const lastHidden = g.op('Slice', [finalNormed, start, bigEnd, one]);
  const lmHead = cfg.tieWordEmbeddings ? embed : ckpt.readF32(W.lmHead, [vocab, h]);
  g.node({ op: 'MatMul', inputs: [lastHidden, g.initF32('lm_head.weight_t', [h, vocab], transposeConcat([lmHead], [vocab], h))], outputs: [IO.logits] });

  g.output(IO.logits, 'float32', [1, 'keep', vocab]);
  for (let l = 0; l < cfg.nLayers; l++) {
    g.output(IO.presentKey(l), 'float32', [1, nKvHeads, 'total', d]);
    g.output(IO.presentValue(l), 'float32', [1, nKvHeads, 'total', d]);
    if (opts.attentions) g.output(IO.attentions(l), 'float32', [1, nHeads, 'seq', 'total']);
    if (opts.queries) g.output(IO.queries(l), 'float32', [1, 'seq', nHeads * d]);
  }
  return g.toBytes(`attend-${cfg.family}-decoder`);
}
