// `npm run bench`: runs each measurement in a fresh process, repeats it, and writes BENCHMARKS.md + bench-results.json.
// A script, never a test: the numbers depend on the machine and on what else it is doing.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

interface Run {
  model: string;
  params: number;
  prompt: number;
  window: number;
  sinks: number;
  loadMs: number;
  prefillTokPerS: number;
  decodeTokPerS: number;
  peakRssMB: number;
}

interface Stat {
  median: number;
  min: number;
  max: number;
}

function stat(xs: number[]): Stat {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor((s.length - 1) / 2)], min: s[0], max: s[s.length - 1] };
}

const root = path.resolve(__dirname, '..', '..');
const runner = path.join(root, 'out', 'tools', 'bench-run.js');
const repeats = Number(process.env.ATTEND_BENCH_REPEATS ?? 3);

function measure(args: string[]): Run[] {
  const runs: Run[] = [];
  for (let i = 0; i < repeats; i++) {
    const out = execFileSync(process.execPath, [runner, ...args], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 20 });
    runs.push(JSON.parse(out.trim().split('\n').pop()!) as Run);
  }
  return runs;
}

function fmt(s: Stat, digits = 0): string {
  const f = (x: number): string => x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  return `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}

function machine(): string {
  const cpus = os.cpus();
  return `${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}`;
}

function main(): void {
  const fixture = path.join(root, 'test', 'fixtures', 'generated', 'tiny-llama');
  const builtin = path.join(root, 'models', 'attend-default');
  const targets: { label: string; args: string[] }[] = [{ label: 'fixture tiny-llama', args: ['--model', fixture] }];
  if (fs.existsSync(path.join(builtin, 'config.json'))) targets.push({ label: 'built-in attend-default', args: ['--model', builtin] });
  targets.push({ label: 'random ~100M (Qwen2.5-like)', args: ['--shape', 'random-100m', '--window', '4096'] });
  const prompts = (process.env.ATTEND_BENCH_PROMPTS ?? '1024,4096,16384').split(',').map(Number);

  const rows: string[] = [];
  const json: Record<string, unknown>[] = [];
  for (const t of targets) {
    for (const n of prompts) {
      process.stderr.write(`bench: ${t.label} @ ${n} tokens ...\n`);
      const runs = measure([...t.args, '--prompt', String(n), '--decode', '32']);
      const pre = stat(runs.map((r) => r.prefillTokPerS));
      const dec = stat(runs.map((r) => r.decodeTokPerS));
      const rss = stat(runs.map((r) => r.peakRssMB));
      const r0 = runs[0];
      rows.push(
        `| ${t.label} | ${(r0.params / 1e6).toFixed(2)}M | ${n.toLocaleString('en-US')} | ${r0.window} + ${r0.sinks} sinks | ${fmt(pre)} | ${fmt(dec, 1)} | ${fmt(rss)} |`,
      );
      json.push({ target: t.label, prompt: n, runs });
    }
  }
  const md = [
    '# Benchmarks',
    '',
    'Written by `npm run bench` (tools/bench.ts). Each cell: median of ' + repeats + ' runs, (min–max); every run is a fresh process.',
    'Prefill is chunked (256 tokens); decode is 32 greedy steps after the prompt, exporting attention (as answers do).',
    '',
    `Machine: ${machine()}.`,
    `Date: ${new Date().toISOString().slice(0, 10)}.`,
    '',
    '## Prefill, decode and peak memory',
    '',
    '| model | params | prompt tokens | window | prefill tok/s | decode tok/s | peak RSS MB |',
    '| --- | ---: | ---: | --- | ---: | ---: | ---: |',
    ...rows,
    '',
  ].join('\n');
  const extra = path.join(root, 'BENCHMARKS.notes.md');
  fs.writeFileSync(path.join(root, 'BENCHMARKS.md'), md + (fs.existsSync(extra) ? '\n' + fs.readFileSync(extra, 'utf8') : ''));
  fs.writeFileSync(path.join(root, 'bench-results.json'), JSON.stringify({ machine: machine(), results: json }, null, 2) + '\n');
  process.stderr.write('bench: wrote BENCHMARKS.md and bench-results.json\n');
}

main();
