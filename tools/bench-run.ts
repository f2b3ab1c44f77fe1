// One benchmark measurement in a fresh process (so peak RSS belongs to it alone); prints one JSON line.
// usage: node out/tools/bench-run.js (--shape NAME | --model DIR) --prompt N [--decode N] [--chunk N] [--window N|full]
//        [--sinks N] [--threads N] [--no-attn] [--agree K] [--weights f32|int8|int4]
// Decode is greedy (argmax), so the generated ids can be checked against llama.cpp on the same weights.
import { parseArgs } from 'node:util';
import { Decoder } from '../engine/runtime/decoder';
import type { WeightFormat } from '../engine/graph/decoder';
import type { AttentionSpec, ModelConfig } from '../engine/types';
import { loadConfig, matmulParameters } from '../engine/config';
import { openCheckpoint } from '../engine/safetensors';
import { rng } from '../test/unit/helpers/random-model';
import { ensureBenchModel } from './bench-model';
import { peakRssBytes } from './bench-util';

export function parameterCount(cfg: ModelConfig): number {
  const { hiddenSize: h, nHeads, nKvHeads, headDim: d, intermediateSize: inter, vocabSize: v, nLayers } = cfg;
  const perLayer = h * nHeads * d * 2 + h * nKvHeads * d * 2 + 3 * h * inter + 2 * h;
  return v * h * (cfg.tieWordEmbeddings ? 1 : 2) + nLayers * perLayer + h;
}

/**
 * Useful prefill FLOPs: 2 x matmul parameters per token, plus attention (QK^T and PV, 4 x heads x headDim per visible
 * key) over the keys each token may see under `spec`. Work a kernel spends on masked keys is not counted.
 */
export function prefillFlops(cfg: ModelConfig, spec: AttentionSpec, nPrompt: number): number {
  let keys = 0;
  for (let p = 0; p < nPrompt; p++) {
    const w = spec.window === null ? p + 1 : Math.min(p + 1, spec.window);
    keys += w + Math.max(0, Math.min(spec.sinks, p + 1 - w));
  }
  return 2 * matmulParameters(cfg) * nPrompt + 4 * cfg.nLayers * cfg.nHeads * cfg.headDim * keys;
}

/** The benchmark prompt: seeded random ids below `vocab` (the same list for the engine and for llama.cpp). */
export function benchPromptIds(n: number, vocab: number, seed = 5): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Math.floor(r() * vocab));
}

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      shape: { type: 'string' },
      model: { type: 'string' },
      prompt: { type: 'string' },
      decode: { type: 'string', default: '32' },
      chunk: { type: 'string', default: '256' },
      window: { type: 'string' },
      sinks: { type: 'string', default: '4' },
      threads: { type: 'string' },
      'no-attn': { type: 'boolean', default: false },
      weights: { type: 'string', default: 'f32' },
      /** Agreement mode: this many short prompts (seeds 100..), greedy ids only, no timings. */
      agree: { type: 'string' },
    },
  });
  const nPrompt = Number(values.prompt);
  const nDecode = Number(values.decode);
  const chunk = Number(values.chunk);
  const dir = values.model ?? ensureBenchModel(values.shape ?? '');
  const cfg = loadConfig(dir);
  const ckpt = openCheckpoint(dir);
  const window = values.window === 'full' ? null : values.window ? Number(values.window) : (cfg.slidingWindow ?? 4096);
  const spec: AttentionSpec = { window, sinks: window === null ? 0 : Number(values.sinks) };
  const tLoad = performance.now();
  const dec = await Decoder.create(cfg, ckpt, {
    attention: spec,
    weights: values.weights as WeightFormat,
    ...(values.threads ? { threads: Number(values.threads) } : {}),
  });
  ckpt.close();
  const loadMs = performance.now() - tLoad;
  const rssAfterLoadMB = process.memoryUsage().rss / 2 ** 20;
  if (values.agree) {
    const runs: number[][] = [];
    for (let k = 0; k < Number(values.agree); k++) {
      const prompt = benchPromptIds(nPrompt, cfg.vocabSize, 100 + k);
      let r = await dec.step(dec.emptyState(), prompt);
      const out = [argmax(r.logits)];
      while (out.length < nDecode) {
        r = await dec.step(r.state, [out[out.length - 1]]);
        out.push(argmax(r.logits));
      }
      runs.push(out);
    }
    await dec.dispose();
    process.stdout.write(JSON.stringify({ agree: runs }) + '\n');
    return;
  }
  const ids = benchPromptIds(nPrompt, cfg.vocabSize);

  let state = dec.emptyState();
  let logits: Float32Array = new Float32Array(0);
  const t0 = performance.now();
  for (let at = 0; at < nPrompt; at += chunk) {
    const r = await dec.step(state, ids.slice(at, Math.min(nPrompt, at + chunk)));
    state = r.state;
    logits = r.logits;
  }
  const prefillMs = performance.now() - t0;
  const generated = [argmax(logits)];
  const t1 = performance.now();
  for (let i = 1; i < nDecode; i++) {
    const r = await dec.step(state, [generated[i - 1]], { attentions: !values['no-attn'] });
    state = r.state;
    generated.push(argmax(r.logits));
  }
  const decodeMs = performance.now() - t1;
  await dec.dispose();
  process.stdout.write(
    JSON.stringify({
      model: values.model ?? values.shape,
      weights: values.weights,
      params: parameterCount(cfg),
      prompt: nPrompt,
      window,
      sinks: spec.sinks,
      chunk,
      loadMs,
      rssAfterLoadMB,
      prefillFlops: prefillFlops(cfg, spec, nPrompt),
      prefillMs,
      prefillTokPerS: nPrompt / (prefillMs / 1000),
      decodeTokPerS: (nDecode - 1) / (decodeMs / 1000),
      peakRssMB: peakRssBytes() / 2 ** 20,
      kvSlots: state.nSlots,
      ids: generated,
    }) + '\n',
  );
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
}
