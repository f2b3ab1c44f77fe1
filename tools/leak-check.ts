// Memory over many asks: runs N asks (default 200) through one engine worker process, the way the extension does
// (EngineClient over JSON-RPC, a persistent cache folder, documents and questions that vary so both cache hits and
// misses happen), and records the worker's resident memory (VmRSS from /proc) as it goes. Prints a small Markdown
// table and writes it to leak-check.md (or --out FILE). A script, not a test: it measures, it does not assert.
//
//   npx tsc -p tsconfig.json && node out/tools/leak-check.js [--asks 200] [--model DIR] [--out FILE]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { EngineClient } from '../extension/engineClient';
import { fixturePath } from './make-fixture';

const ROOT = path.resolve(__dirname, '..', '..');

function rssKiB(pid: number): { rss: number; hwm: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

function documentSet(i: number): { path: string; text: string }[] {
  // Four rotating document sets: the same set comes back every fourth ask (cache reuse), one line changes with i.
  const set = i % 4;
  const lines = Array.from({ length: 120 + set * 40 }, (_, k) => `Set ${set}, line ${k}: the keeper logged ${(k * 13 + set) % 97} ships.`);
  return [
    { path: `set${set}/log.txt`, text: lines.join('\n') },
    { path: `set${set}/note.md`, text: `# Note ${set}\nAsk number ${i % 8} of this set.\n` },
  ];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { asks: { type: 'string', default: '200' }, model: { type: 'string' }, out: { type: 'string', default: 'leak-check.md' } },
  });
  const asks = Number(values.asks);
  const modelDir = path.resolve(values.model ?? fixturePath('tiny-llama'));
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-leak-'));
  const client = new EngineClient({
    workerPath: path.join(ROOT, 'out', 'engine', 'worker.js'),
    execPath: process.execPath,
    log: () => undefined,
  });
  client.setModel({ modelDir, window: 256, sinks: null, weights: false, cacheDir, cacheMaxBytes: 64 * 2 ** 20 });
  const rows: { ask: number; rss: number; hwm: number; reused: number; ms: number }[] = [];
  const every = Math.max(1, Math.floor(asks / 10));
  let pid = -1;
  try {
    for (let i = 1; i <= asks; i++) {
      const t0 = performance.now();
      const r = await client.ask({
        askId: `leak-${i}`,
        docs: documentSet(i),
        question: `How many ships in line ${i % 50}?`,
        maxNewTokens: 8,
      });
      const ms = performance.now() - t0;
      pid = (client as unknown as { running: { child: { pid: number } } }).running.child.pid;
      if (i === 1 || i % every === 0 || i === asks) {
        const m = rssKiB(pid);
        rows.push({ ask: i, rss: m.rss, hwm: m.hwm, reused: r.reusedTokens, ms });
        process.stderr.write(`ask ${i}: RSS ${(m.rss / 1024).toFixed(1)} MiB\n`);
      }
    }
  } finally {
    await client.dispose();
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
  const mib = (k: number): string => (k / 1024).toFixed(1);
  const warm = rows.find((r) => r.ask >= asks / 4) ?? rows[0];
  const last = rows[rows.length - 1];
  const lines = [
    `Worker RSS over ${asks} asks (${path.relative(ROOT, modelDir) || modelDir}, window 256, 4 rotating document sets, 8 new tokens each; ${os.cpus().length} CPUs, node ${process.version}):`,
    '',
    '| ask | RSS (MiB) | peak RSS (MiB) | reused tokens | ask time (ms) |',
    '| ---: | ---: | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.ask} | ${mib(r.rss)} | ${mib(r.hwm)} | ${r.reused} | ${r.ms.toFixed(0)} |`),
    '',
    `From ask ${warm.ask} to ask ${last.ask}: RSS ${mib(warm.rss)} -> ${mib(last.rss)} MiB ` +
      `(${((last.rss - warm.rss) / 1024 / Math.max(1, last.ask - warm.ask)).toFixed(3)} MiB per ask).`,
    '',
  ];
  fs.writeFileSync(values.out, lines.join('\n'));
  process.stdout.write(lines.join('\n'));
}

main().catch((e: unknown) => {
  process.stderr.write(`leak-check: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
