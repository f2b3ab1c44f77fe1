// `attend eval`: runs the retrieval tasks at lengths relative to the window and writes EVALUATION.md + a JSON file.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  UsageError,
  displayPath,
  nonNegativeNumber,
  onOff,
  positiveInt,
  resolveModelDir,
  type CliContext,
  type Command,
} from '../cli-common';
import { DEFAULT_LEXICAL_WEIGHT, DEFAULT_MEMORY_TOP_K } from '../engine';
import { DEFAULT_DOC_ROOT, FileCorpus } from './corpus';
import { DEFAULT_RATIOS, defaultN, runEval, type EvalProgress } from './harness';
import { renderMarkdown, ratioLabel } from './report';
import { TASKS, type TaskName } from './tasks';
import type { MemoryMode } from './score';

const USAGE =
  'attend eval [--model DIR] [--tasks passkey,niah,multikey,lookup,notfound] [--lengths 0.25,0.5,1,4,16,64] [--n N] ' +
  '[--memory on|off|both] [--top-k K] [--lexical-weight W] [--seed S] [--window N] [--threads N] [--max-new-tokens N] [--quote on|off] [--second-reading on|off] [--docs DIR] ' +
  '[--out FILE] [--md FILE] [--quiet]';

export interface EvalArgs {
  readonly model?: string;
  readonly tasks: TaskName[];
  readonly ratios: number[];
  readonly n?: number;
  readonly modes: MemoryMode[];
  readonly topK: number;
  readonly lexicalWeight: number;
  /** Absent: Engine SECOND_READING. */
  readonly secondReading?: boolean;
  readonly seed: string;
  readonly window?: number;
  readonly threads?: number;
  readonly maxNewTokens: number;
  /** Absent: the model's default. */
  readonly quote?: boolean;
  readonly docRoot: string;
  readonly out: string;
  readonly md: string;
  readonly quiet: boolean;
}

/** Parses eval's flags; a bad one throws the UsageError main() reports with exit code 2. */
export function parseEvalArgs(args: string[]): EvalArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: false,
      strict: true,
      options: {
        model: { type: 'string' },
        tasks: { type: 'string' },
        lengths: { type: 'string' },
        n: { type: 'string' },
        memory: { type: 'string' },
        'top-k': { type: 'string' },
        'lexical-weight': { type: 'string' },
        seed: { type: 'string' },
        window: { type: 'string' },
        threads: { type: 'string' },
        'max-new-tokens': { type: 'string' },
        quote: { type: 'string' },
        'second-reading': { type: 'string' },
        docs: { type: 'string' },
        out: { type: 'string' },
        md: { type: 'string' },
        quiet: { type: 'boolean' },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const v = parsed.values;
  const list = (s: string): string[] =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);

  const tasks = v.tasks === undefined ? [...TASKS] : list(v.tasks);
  for (const t of tasks)
    if (!(TASKS as readonly string[]).includes(t)) throw new UsageError(`unknown task "${t}" (tasks: ${TASKS.join(', ')})`);
  if (tasks.length === 0) throw new UsageError('--tasks is empty');

  const ratios = v.lengths === undefined ? [...DEFAULT_RATIOS] : list(v.lengths).map(Number);
  if (ratios.length === 0 || ratios.some((r) => !Number.isFinite(r) || r <= 0))
    throw new UsageError(`--lengths must be positive numbers (multiples of the window), got "${v.lengths}"`);

  const memory = v.memory ?? 'both';
  if (!['on', 'off', 'both'].includes(memory)) throw new UsageError(`--memory must be on, off or both, got "${memory}"`);
  const modes: MemoryMode[] = memory === 'both' ? ['off', 'on'] : [memory as MemoryMode];
  const quote = onOff(v.quote, '--quote');
  const secondReading = onOff(v['second-reading'], '--second-reading');

  return {
    ...(v.model !== undefined ? { model: v.model } : {}),
    tasks: [...new Set(tasks)] as TaskName[],
    ratios: [...new Set(ratios)].sort((a, b) => a - b),
    ...(v.n !== undefined ? { n: positiveInt(v.n, '--n') } : {}),
    modes,
    topK: positiveInt(v['top-k'], '--top-k') ?? DEFAULT_MEMORY_TOP_K,
    lexicalWeight: nonNegativeNumber(v['lexical-weight'], '--lexical-weight') ?? DEFAULT_LEXICAL_WEIGHT,
    ...(secondReading !== undefined ? { secondReading } : {}),
    seed: v.seed ?? '1',
    ...(v.window !== undefined ? { window: positiveInt(v.window, '--window') } : {}),
    ...(v.threads !== undefined ? { threads: positiveInt(v.threads, '--threads') } : {}),
    maxNewTokens: positiveInt(v['max-new-tokens'], '--max-new-tokens') ?? 32,
    ...(quote !== undefined ? { quote } : {}),
    docRoot: v.docs ?? DEFAULT_DOC_ROOT,
    out: v.out ?? 'eval-results.json',
    md: v.md ?? 'EVALUATION.md',
    quiet: v.quiet ?? false,
  };
}

function progressLine(p: EvalProgress, startedAt: number): string | null {
  if (p.phase === 'generate') return `generated ${p.total} examples in ${((performance.now() - startedAt) / 1000).toFixed(1)} s\n`;
  const r = p.last!;
  const mark = r.correct ? 'ok ' : 'ERR';
  const pred = JSON.stringify(r.prediction.length > 40 ? r.prediction.slice(0, 40) + '…' : r.prediction);
  return (
    `[memory ${p.mode} ${p.done}/${p.total}] ${mark} ${r.task} ${ratioLabel(r.ratio)} ${r.promptTokens} tok ` +
    `prefill ${Math.round(r.prefillMs)} ms decode ${Math.round(r.decodeMs)} ms -> ${pred} (gold ${JSON.stringify(r.gold)})\n`
  );
}

export const evalCommand: Command = {
  summary: 'score the model on retrieval tasks (passkey, needles, lookup, not found) at lengths relative to the window',
  usage: USAGE,
  async run(args: string[], ctx: CliContext): Promise<number> {
    const a = parseEvalArgs(args);
    const modelDir = resolveModelDir(a.model, ctx);
    const corpus = FileCorpus.heldOut(path.resolve(ctx.io.cwd, a.docRoot));
    const startedAt = performance.now();
    const run = await runEval(
      {
        modelDir,
        modelLabel: displayPath(modelDir, ctx.io.cwd),
        tasks: a.tasks,
        ratios: a.ratios,
        n: (r) => a.n ?? defaultN(r),
        modes: a.modes,
        seed: a.seed,
        topK: a.topK,
        lexicalWeight: a.lexicalWeight,
        ...(a.secondReading !== undefined ? { secondReading: a.secondReading } : {}),
        ...(a.window !== undefined ? { window: a.window } : {}),
        ...(a.threads !== undefined ? { threads: a.threads } : {}),
        maxNewTokens: a.maxNewTokens,
        ...(a.quote !== undefined ? { quote: a.quote } : {}),
        corpus,
      },
      (p) => {
        if (a.quiet) return;
        const line = progressLine(p, startedAt);
        if (line) ctx.io.stderr(line);
      },
    );
    const outFile = path.resolve(ctx.io.cwd, a.out);
    const mdFile = path.resolve(ctx.io.cwd, a.md);
    fs.writeFileSync(outFile, JSON.stringify(run, null, 1) + '\n');
    const md = renderMarkdown(run);
    fs.writeFileSync(mdFile, md);
    ctx.io.stdout(md.slice(md.indexOf('## block memory') >= 0 ? md.indexOf('## block memory') : 0));
    ctx.io.stdout(`\nwrote ${mdFile} and ${outFile} (${(run.totalSeconds / 60).toFixed(1)} min)\n`);
    return 0;
  },
};
