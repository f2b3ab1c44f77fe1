// One llama.cpp measurement (node-llama-cpp, prebuilt CPU binary, nothing downloaded or built) in a fresh process:
// token ids fed directly, greedy decode; prints one JSON line with prefill/decode tok/s, the generated ids and peak RSS.
// usage: node out/tools/bench-peer-run.js --gguf FILE --prompt N --vocab N [--decode N] [--threads N] [--batch N] [--agree K]
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { benchPromptIds } from './bench-run';

function peakRssMB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return (m ? Number(m[1]) * 1024 : process.memoryUsage().rss) / 2 ** 20;
}

// node-llama-cpp is an ES module; a real dynamic import keeps it out of TypeScript's CommonJS require() rewrite.
const importEsm = new Function('m', 'return import(m)') as (m: string) => Promise<typeof import('node-llama-cpp')>;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      gguf: { type: 'string' },
      prompt: { type: 'string' },
      decode: { type: 'string', default: '32' },
      threads: { type: 'string', default: '2' },
      vocab: { type: 'string' },
      batch: { type: 'string', default: '512' },
      agree: { type: 'string' },
    },
  });
  if (!values.vocab) throw new Error("--vocab (the model's vocab_size) is required: prompt ids must match the engine run");
  const nPrompt = Number(values.prompt);
  const nDecode = Number(values.decode);
  const threads = Number(values.threads);
  const { getLlama, LlamaLogLevel } = await importEsm('node-llama-cpp');
  const llama = await getLlama({
    gpu: false,
    build: 'never',
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
    maxThreads: threads,
  });
  const tLoad = performance.now();
  const model = await llama.loadModel({ modelPath: values.gguf!, gpuLayers: 0 });
  const context = await model.createContext({
    contextSize: nPrompt + nDecode + 8,
    batchSize: Number(values.batch),
    threads: { ideal: threads, min: threads },
    sequences: 1,
    flashAttention: false,
    // fp32 KV like the engine (llama.cpp's default is f16), so greedy ids can be compared.
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
  });
  const loadMs = performance.now() - tLoad;
  const seq = context.getSequence();
  if (values.agree) {
    // Agreement mode: the same short prompts as bench-run --agree, greedy ids only.
    const runs: number[][] = [];
    for (let k = 0; k < Number(values.agree); k++) {
      await seq.clearHistory();
      const out: number[] = [];
      for await (const tok of seq.evaluate(benchPromptIds(nPrompt, Number(values.vocab), 100 + k) as never[], { temperature: 0 })) {
        out.push(tok as unknown as number);
        if (out.length >= nDecode) break;
      }
      runs.push(out);
    }
    await context.dispose();
    await model.dispose();
    await llama.dispose();
    process.stdout.write(JSON.stringify({ agree: runs }) + '\n');
    return;
  }
  const ids = benchPromptIds(nPrompt, Number(values.vocab)).map((t) => t as never);
  const out: number[] = [];
  const t0 = performance.now();
  let tFirst = 0;
  for await (const tok of seq.evaluate(ids, { temperature: 0 })) {
    out.push(tok as unknown as number);
    if (out.length === 1) tFirst = performance.now();
    if (out.length >= nDecode) break;
  }
  const tEnd = performance.now();
  await context.dispose();
  await model.dispose();
  await llama.dispose();
  process.stdout.write(
    JSON.stringify({
      engine: 'llama.cpp',
      prompt: nPrompt,
      threads,
      loadMs,
      // The first token's time is prefill plus one sampling: counted as prefill, as for the engine.
      prefillTokPerS: nPrompt / ((tFirst - t0) / 1000),
      decodeTokPerS: (out.length - 1) / ((tEnd - tFirst) / 1000),
      peakRssMB: peakRssMB(),
      ids: out,
    }) + '\n',
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
