// Seeded random model weights held in memory, behind the same Checkpoint interface a safetensors folder provides.
import type { Checkpoint, ModelConfig, TensorInfo } from '../../../engine/types';
import { W } from '../../../engine/graph/io';
import { mulberry32 as rng } from '../../../engine/rng';

export { rng };

export function testConfig(over: Partial<ModelConfig> = {}): ModelConfig {
  return Object.freeze({
    family: 'llama',
    hiddenSize: 64,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 16,
    intermediateSize: 96,
    vocabSize: 97,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 4096,
    slidingWindow: null,
    tieWordEmbeddings: false,
    attentionBias: false,
    bosTokenId: null,
    eosTokenIds: [1],
    attentionSinks: null,
    sinkDistance: null,
    quoteReplies: null,
    ...over,
  });
}

export function randomCheckpoint(cfg: ModelConfig, seed = 1, scale = 0.2): Checkpoint {
  const r = rng(seed);
  const tensors = new Map<string, TensorInfo>();
  const data = new Map<string, Float32Array>();
  const add = (name: string, shape: number[], kind: 'w' | 'norm' | 'bias' = 'w'): void => {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const u = r() * 2 - 1;
      a[i] = kind === 'norm' ? 1 + 0.1 * u : kind === 'bias' ? 0.1 * u : scale * u;
    }
    tensors.set(name, { name, dtype: 'F32', shape, file: '<memory>' });
    data.set(name, a);
  };
  const { hiddenSize: h, headDim: d, nHeads, nKvHeads, intermediateSize: inter, vocabSize: v } = cfg;
  add(W.embed, [v, h]);
  for (let l = 0; l < cfg.nLayers; l++) {
    add(W.inputNorm(l), [h], 'norm');
    add(W.postNorm(l), [h], 'norm');
    add(W.proj(l, 'q'), [nHeads * d, h]);
    add(W.proj(l, 'k'), [nKvHeads * d, h]);
    add(W.proj(l, 'v'), [nKvHeads * d, h]);
    add(W.proj(l, 'o'), [h, nHeads * d]);
    if (cfg.attentionBias) {
      add(W.projBias(l, 'q'), [nHeads * d], 'bias');
      add(W.projBias(l, 'k'), [nKvHeads * d], 'bias');
      add(W.projBias(l, 'v'), [nKvHeads * d], 'bias');
      if (cfg.family === 'llama') add(W.projBias(l, 'o'), [h], 'bias');
    }
    add(W.mlp(l, 'gate'), [inter, h]);
    add(W.mlp(l, 'up'), [inter, h]);
    add(W.mlp(l, 'down'), [h, inter]);
  }
  add(W.finalNorm, [h], 'norm');
  if (!cfg.tieWordEmbeddings) add(W.lmHead, [v, h]);
  return {
    dir: '<memory>',
    tensors,
    readF32(name, expectShape) {
      const a = data.get(name);
      const info = tensors.get(name);
      if (!a || !info) throw new Error(`tensor ${name} missing in <memory>`);
      if (expectShape && expectShape.join(',') !== info.shape.join(',')) {
        throw new Error(`tensor ${name} in <memory>: shape [${info.shape}] != [${expectShape}]`);
      }
      return a;
    },
    close() {},
  };
}
