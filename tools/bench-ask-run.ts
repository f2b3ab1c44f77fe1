// One `ask` through the public engine API in a fresh process: time to first token, cache reuse, peak RSS (one JSON line).
// usage: node out/tools/bench-ask-run.js --model DIR --tokens N [--cache DIR | --no-cache] [--no-memory] [--no-second-reading]
//        [--threads N] [--rehearse]
// --rehearse: Engine.rehearse after load (as the extension's engine process does while the question is typed), timed apart.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_MEMORY_TOP_K, Engine } from '../engine/engine';
import { loadTokenizer } from '../engine/tokenizer';
import { peakRssBytes } from './bench-util';

/** Real English text from the machine, repeated with numbered sections until it reaches `tokens` model tokens. */
export function benchDocument(modelDir: string, tokens: number): string {
  const dir = '/usr/share/common-licenses';
  const texts = fs
    .readdirSync(dir)
    .sort()
    .map((f) => path.join(dir, f))
    .filter((f) => fs.statSync(f).isFile())
    .map((f) => fs.readFileSync(f, 'utf8'));
  const tok = loadTokenizer(modelDir);
  const parts: string[] = [];
  let count = 0;
  for (let i = 0; count < tokens; i++) {
    const piece = `\n## Section ${i + 1}\n\n${texts[i % texts.length]}`;
    const n = tok.count(piece);
    if (count + n > tokens) {
      // Trim the last piece by lines to land close to the target.
      const lines = piece.split('\n');
      let keep = '';
      for (const line of lines) {
        const next = keep + line + '\n';
        if (count + tok.count(next) > tokens) break;
        keep = next;
      }
      parts.push(keep);
      break;
    }
    parts.push(piece);
    count += n;
  }
  return parts.join('');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      tokens: { type: 'string' },
      cache: { type: 'string' },
      'no-cache': { type: 'boolean' },
      'no-memory': { type: 'boolean' },
      'no-second-reading': { type: 'boolean' },
      threads: { type: 'string' },
      rehearse: { type: 'boolean' },
      question: { type: 'string', default: 'What is the pass key?' },
    },
  });
  const modelDir = values.model!;
  const text = benchDocument(modelDir, Number(values.tokens));
  const tLoad = performance.now();
  const engine = await Engine.load({
    modelDir,
    cacheDir: values['no-cache'] ? null : values.cache!,
    // undefined: the engine's default block memory
    memory: values['no-memory'] ? null : values['no-second-reading'] ? { topK: DEFAULT_MEMORY_TOP_K, secondReading: false } : undefined,
    ...(values.threads ? { threads: Number(values.threads) } : {}),
  });
  const loadMs = performance.now() - tLoad;
  const tRehearse = performance.now();
  if (values.rehearse) await engine.rehearse();
  const rehearseMs = values.rehearse ? performance.now() - tRehearse : null;
  const t0 = performance.now();
  const r = await engine.ask({ docs: [{ path: 'bench.md', text }], question: values.question!, maxNewTokens: 8 });
  const totalMs = performance.now() - t0;
  await engine.dispose();
  process.stdout.write(
    JSON.stringify({
      promptTokens: r.promptTokens,
      reusedTokens: r.reusedTokens,
      reusedFrom: r.reusedFrom,
      computedTokens: r.computedTokens,
      readings: r.readings ? r.readings.length : 1,
      firstTokenMs: r.timings.firstTokenMs,
      totalMs,
      loadMs,
      rehearseMs,
      peakRssMB: peakRssBytes() / 2 ** 20,
    }) + '\n',
  );
}

if (require.main === module) {
  main().catch((e: unknown) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 1;
  });
}
