// Accuracy of the quantised weight formats against f32 on the same model and prompt: every position's next-token
// distribution, one JSON line (top-1 agreement, mean and max KL(f32 || quantised), largest and relative RMS logit error).
// usage: node out/tools/bench-quant-run.js (--shape NAME | --model DIR) [--prompt 512] [--threads N]
import { parseArgs } from 'node:util';
import { loadConfig } from '../engine/config';
import type { WeightFormat } from '../engine/graph/decoder';
import { Decoder } from '../engine/runtime/decoder';
import { openCheckpoint } from '../engine/safetensors';
import { ensureBenchModel } from './bench-model';
import { benchPromptIds } from './bench-run';

function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (x) => x - lse);
}

async function logitsFor(dir: string, weights: WeightFormat, ids: number[], threads?: number): Promise<Float32Array> {
  const cfg = loadConfig(dir);
  const ckpt = openCheckpoint(dir);
  const dec = await Decoder.create(cfg, ckpt, { attention: { window: null, sinks: 0 }, weights, ...(threads ? { threads } : {}) });
  ckpt.close();
  const r = await dec.step(dec.emptyState(), ids, { keepLogits: ids.length });
  await dec.dispose();
  return r.logits;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      shape: { type: 'string' },
      model: { type: 'string' },
      prompt: { type: 'string', default: '512' },
      threads: { type: 'string' },
    },
  });
  const dir = values.model ?? ensureBenchModel(values.shape ?? 'random-100m');
  const vocab = loadConfig(dir).vocabSize;
  const ids = benchPromptIds(Number(values.prompt), vocab);
  const threads = values.threads ? Number(values.threads) : undefined;
  const ref = await logitsFor(dir, 'f32', ids, threads);
  const result: Record<string, unknown> = { prompt: ids.length };
  for (const fmt of ['int8', 'int4'] as const) {
    const got = await logitsFor(dir, fmt, ids, threads);
    let top1 = 0;
    let klSum = 0;
    let klMax = 0;
    let maxDiff = 0;
    let errSq = 0;
    let refSq = 0;
    for (let p = 0; p < ids.length; p++) {
      const a = ref.subarray(p * vocab, (p + 1) * vocab);
      const b = got.subarray(p * vocab, (p + 1) * vocab);
      let ia = 0;
      let ib = 0;
      for (let i = 0; i < vocab; i++) {
        if (a[i] > a[ia]) ia = i;
        if (b[i] > b[ib]) ib = i;
        maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
        errSq += (a[i] - b[i]) ** 2;
        refSq += a[i] ** 2;
      }
      if (ia === ib) top1++;
      const la = logSoftmax(a);
      const lb = logSoftmax(b);
      let kl = 0;
      for (let i = 0; i < vocab; i++) kl += Math.exp(la[i]) * (la[i] - lb[i]);
      klSum += kl;
      klMax = Math.max(klMax, kl);
    }
    result[fmt] = {
      top1Agreement: top1 / ids.length,
      meanKl: klSum / ids.length,
      maxKl: klMax,
      maxAbsLogitDiff: maxDiff,
      relRmsLogitError: Math.sqrt(errSq / refSq),
    };
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
