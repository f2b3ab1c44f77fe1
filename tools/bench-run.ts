// One benchmark measurement in a fresh process (so peak RSS belongs to it alone); prints one JSON line.
// usage: node out/tools/bench-run.js --shape NAME --prompt N [--decode N] [--chunk N] [--window N] [--sinks N] [--threads N]
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { Decoder } from '../engine/runtime/decoder';
import type { ModelConfig } from '../engine/types';
import { loadConfig } from '../engine/config';
import { openCheckpoint } from '../engine/safetensors';
import { randomCheckpoint, rng, testConfig } from '../test/unit/helpers/random-model';

/** Model shapes the benchmark knows: a random-weight model shaped like a small real one, or a folder on disk. */
export const SHAPES: Record<string, () => ModelConfig> = {
  // ~100M parameters, Qwen2.5/SmolLM2-like proportions (GQA 3:1, tied embeddings, 32k vocab).
  'random-100m': () =>
    testConfig({
      hiddenSize: 768,
      nLayers: 12,
      nHeads: 12,
      nKvHeads: 4,
      headDim: 64,
      intermediateSize: 2048,
      vocabSize: 32000,
      tieWordEmbeddings: true,
      maxPositionEmbeddings: 131072,
    }),
};

export function parameterCount(cfg: ModelConfig): number {
  const { hiddenSize: h, nHeads, nKvHeads, headDim: d, intermediateSize: inter, vocabSize: v, nLayers } = cfg;
  const perLayer = h * nHeads * d * 2 + h * nKvHeads * d * 2 + 3 * h * inter + 2 * h;
  return v * h * (cfg.tieWordEmbeddings ? 1 : 2) + nLayers * perLayer + h;
}

function peakRssBytes(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.memoryUsage().rss;
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
    },
  });
  const nPrompt = Number(values.prompt);
  const nDecode = Number(values.decode);
  const chunk = Number(values.chunk);
  let cfg: ModelConfig;
  let ckpt;
  if (values.model) {
    cfg = loadConfig(values.model);
    ckpt = openCheckpoint(values.model);
  } else {
    const make = SHAPES[values.shape ?? ''];
    if (!make) throw new Error(`unknown --shape ${values.shape}`);
    cfg = make();
    ckpt = randomCheckpoint(cfg, 1, 0.05);
  }
  const window = values.window ? Number(values.window) : (cfg.slidingWindow ?? 4096);
  const spec = { window, sinks: Number(values.sinks) };
  const tLoad = performance.now();
  const dec = await Decoder.create(cfg, ckpt, { attention: spec, ...(values.threads ? { threads: Number(values.threads) } : {}) });
  const loadMs = performance.now() - tLoad;
  const r = rng(5);
  const ids = Array.from({ length: nPrompt + nDecode }, () => Math.floor(r() * cfg.vocabSize));

  let state = dec.emptyState();
  const t0 = performance.now();
  for (let at = 0; at < nPrompt; at += chunk) {
    state = (await dec.step(state, ids.slice(at, Math.min(nPrompt, at + chunk)))).state;
  }
  const prefillMs = performance.now() - t0;
  const t1 = performance.now();
  for (let i = 0; i < nDecode; i++) state = (await dec.step(state, [ids[nPrompt + i]], { attentions: true })).state;
  const decodeMs = performance.now() - t1;
  await dec.dispose();
  process.stdout.write(
    JSON.stringify({
      model: values.model ?? values.shape,
      params: parameterCount(cfg),
      prompt: nPrompt,
      window,
      sinks: spec.sinks,
      chunk,
      loadMs,
      prefillTokPerS: nPrompt / (prefillMs / 1000),
      decodeTokPerS: nDecode / (decodeMs / 1000),
      peakRssMB: peakRssBytes() / 2 ** 20,
      kvSlots: state.nSlots,
    }) + '\n',
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
