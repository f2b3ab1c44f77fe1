// The evaluation loop: generate every example once, then ask each engine mode (block memory off / on) the same
// examples, scoring answers and attributions. Library code: the CLI, tests and scripts all call runEval.
import * as os from 'node:os';
import { DEFAULT_LEXICAL_WEIGHT, Engine, resolveAttention, SECOND_READING, type EngineOptions } from '../engine';
import { loadConfig } from '../config';
import { quotesAnswers } from '../quote';
import { loadTokenizer } from '../tokenizer';
import { loadChatTemplate, renderChat } from '../chat';
import { assemblePrompt, frameFromTemplate, type TokenOrigin } from '../prompt';
import type { FillerCorpus } from './corpus';
import { generateExample, type EvalExample, type PromptMeter, type Span, type TaskName } from './tasks';
import { attributionHit, exactMatch, lineChance, summarize, type CellSummary, type ExampleResult, type MemoryMode } from './score';

/** Options the runtime is adding to EngineOptions (persistent KV cache, block memory); spelled here until they land. */
export type EvalEngineOptions = EngineOptions & {
  readonly cacheDir?: string | null;
  readonly memory?: { readonly topK: number; readonly lexicalWeight?: number; readonly secondReading?: boolean } | null;
};

/** Measures prompts exactly as Engine.buildPrompt does, without loading the ONNX decoder. */
export function loadPromptMeter(modelDir: string): PromptMeter {
  const tokenizer = loadTokenizer(modelDir);
  const template = loadChatTemplate(modelDir);
  const frame = frameFromTemplate(
    template ? (content) => renderChat(template, [{ role: 'user', content }], { addGenerationPrompt: true }) : null,
  );
  return { tokenizer, count: (docs, question) => assemblePrompt(tokenizer, frame, docs, question).ids.length };
}

/** The attention window the engine will use: --window, else the model's sliding_window. */
export function evalWindow(modelDir: string, window?: number): { window: number; sinks: number } {
  const att = resolveAttention(loadConfig(modelDir), window !== undefined ? { window } : {});
  if (att.window === null) throw new Error(`${modelDir}: the model has full attention (no sliding_window); pass --window N`);
  return { window: att.window, sinks: att.sinks };
}

export const DEFAULT_RATIOS: readonly number[] = [0.25, 0.5, 1, 4, 16, 64];

/**
 * Examples per cell when --n is not given. Prefill grows linearly with length. Measured with the built-in model's
 * shape (4 layers, hidden 256, W = 512) on 2 CPU cores while another job shared them: a 64W (32k-token) prompt takes
 * ~7 s with memory off and ~11 s with memory on, 16W ~3 s each, 4W ~1 s, up to 1W well under 0.5 s; answers are a few
 * tokens. 20/20/20/10/6/3 examples per task at 1/4, 1/2, 1, 4, 16, 64 W (385 examples) then take about 10 minutes
 * for both modes (about 15 with slower memory-on prefill), inside the 20-minute budget for a default run.
 */
export function defaultN(ratio: number): number {
  if (ratio <= 1) return 20;
  if (ratio <= 4) return 10;
  if (ratio <= 16) return 6;
  return 3;
}

export interface EvalPlan {
  readonly modelDir: string;
  /** How the report names the model (default: modelDir). */
  readonly modelLabel?: string;
  readonly tasks: readonly TaskName[];
  readonly ratios: readonly number[];
  /** Examples per cell; a function of the length ratio. */
  readonly n: (ratio: number) => number;
  readonly modes: readonly MemoryMode[];
  readonly seed: string | number;
  readonly topK: number;
  /** Block memory's lexical weight (Engine DEFAULT_LEXICAL_WEIGHT when absent). */
  readonly lexicalWeight?: number;
  /** Block memory's second reading (Engine SECOND_READING when absent). */
  readonly secondReading?: boolean;
  readonly window?: number;
  readonly threads?: number;
  readonly chunkSize?: number;
  readonly maxNewTokens: number;
  /** Quoted answers (quote.ts); absent = the model's default. */
  readonly quote?: boolean;
  readonly corpus: FillerCorpus;
}

export interface EvalRun {
  readonly version: 1;
  readonly date: string;
  readonly totalSeconds: number;
  readonly generateSeconds: number;
  readonly model: {
    readonly dir: string;
    readonly family: string;
    readonly layers: number;
    readonly hiddenSize: number;
    readonly heads: number;
    readonly kvHeads: number;
    readonly vocabSize: number;
    readonly window: number;
    readonly sinks: number;
  };
  readonly settings: {
    readonly tasks: readonly TaskName[];
    readonly ratios: readonly number[];
    readonly nPerRatio: Record<string, number>;
    readonly modes: readonly MemoryMode[];
    readonly seed: string | number;
    readonly topK: number;
    /** Absent in runs from before lexical ranking (attention only). */
    readonly lexicalWeight?: number;
    /** Block memory's second reading (Engine SECOND_READING). Absent in runs from before it existed (off). */
    readonly secondReading?: boolean;
    readonly maxNewTokens: number;
    /** Answers decoded as quotes of the documents (quote.ts). Absent in runs from before it existed (off). */
    readonly quote?: boolean;
    readonly threads: number | null;
    readonly chunkSize: number | null;
    readonly cacheDir: null;
  };
  readonly corpus: { readonly description: string; readonly fingerprint: string };
  readonly machine: {
    readonly platform: string;
    readonly cpu: string;
    readonly cores: number;
    readonly memoryGiB: number;
    readonly node: string;
  };
  readonly cells: CellSummary[];
  readonly examples: ExampleResult[];
  /** Examples as generated (documents omitted to keep the file small). */
  readonly generated: readonly Omit<EvalExample, 'docs'>[];
}

export interface EvalProgress {
  readonly phase: 'generate' | 'ask';
  readonly mode?: MemoryMode;
  readonly done: number;
  readonly total: number;
  readonly last?: ExampleResult;
}

export function generateExamples(
  plan: Pick<EvalPlan, 'tasks' | 'ratios' | 'n' | 'seed' | 'corpus'>,
  window: number,
  meter: PromptMeter,
): EvalExample[] {
  const out: EvalExample[] = [];
  for (const ratio of plan.ratios) {
    for (const task of plan.tasks) {
      for (let index = 0; index < plan.n(ratio); index++) {
        out.push(generateExample({ seed: plan.seed, task, ratio, window, index, corpus: plan.corpus, meter }));
      }
    }
  }
  return out;
}

/** Prompt positions [start, end) of the tokens that cover a document span. */
export function tokenRange(origin: TokenOrigin, span: Span): { start: number; end: number } | null {
  let start = -1;
  let end = -1;
  for (let p = 0; p < origin.doc.length; p++) {
    if (origin.doc[p] === span.doc && origin.start[p] < span.end && origin.end[p] > span.start) {
      if (start < 0) start = p;
      end = p + 1;
    }
  }
  return start < 0 ? null : { start, end };
}

export async function runEval(plan: EvalPlan, onProgress?: (p: EvalProgress) => void): Promise<EvalRun> {
  const t0 = performance.now();
  const cfg = loadConfig(plan.modelDir);
  const { window, sinks } = evalWindow(plan.modelDir, plan.window);
  const meter = loadPromptMeter(plan.modelDir);
  const examples = generateExamples(plan, window, meter);
  const generateSeconds = (performance.now() - t0) / 1000;
  onProgress?.({ phase: 'generate', done: examples.length, total: examples.length });

  const results: ExampleResult[] = [];
  for (const mode of plan.modes) {
    const opts: EvalEngineOptions = {
      modelDir: plan.modelDir,
      window,
      cacheDir: null, // timings must be computation, never a disk hit
      memory:
        mode === 'on'
          ? {
              topK: plan.topK,
              lexicalWeight: plan.lexicalWeight ?? DEFAULT_LEXICAL_WEIGHT,
              secondReading: plan.secondReading ?? SECOND_READING,
            }
          : null,
      ...(plan.threads !== undefined ? { threads: plan.threads } : {}),
      ...(plan.chunkSize !== undefined ? { chunkSize: plan.chunkSize } : {}),
    };
    const engine = await Engine.load(opts);
    try {
      let done = 0;
      for (const ex of examples) {
        engine.clearMemoryCache(); // examples never share a prefix, and the cache would only hold memory
        const res = await engine.ask({
          docs: ex.docs,
          question: ex.question,
          maxNewTokens: plan.maxNewTokens,
          ...(plan.quote !== undefined ? { quote: plan.quote } : {}),
        });
        const top = res.passages[0];
        const needleAt = ex.needle ? tokenRange(res.prompt.origin, ex.needle) : null;
        // Blocks block memory brought back (absent from engines without it).
        const retrieved = (res as { retrieved?: readonly { start: number; end: number }[] }).retrieved ?? [];
        const r: ExampleResult = {
          id: ex.id,
          task: ex.task,
          ratio: ex.ratio,
          mode,
          targetTokens: ex.targetTokens,
          promptTokens: res.promptTokens,
          depth: ex.depth,
          gold: ex.answer,
          prediction: res.answer,
          correct: exactMatch(res.answer, ex.answer),
          hit: attributionHit(res.passages, ex.needle),
          hitChance: lineChance(ex.docs, ex.needle),
          top1: top ? { doc: top.doc, start: top.start, end: top.end, score: top.score } : null,
          prefillMs: res.timings.prefillMs,
          firstTokenMs: res.timings.firstTokenMs,
          decodeMs: res.timings.decodeMs,
          generatedTokens: res.generatedTokens,
          reusedTokens: res.reusedTokens,
          needleDistance: needleAt ? res.promptTokens - needleAt.start : null,
          retrievedBlocks: retrieved.length,
          retrievedNeedle: mode === 'on' && needleAt ? retrieved.some((b) => b.start < needleAt.end && needleAt.start < b.end) : null,
          readings: res.readings,
        };
        results.push(r);
        onProgress?.({ phase: 'ask', mode, done: ++done, total: examples.length, last: r });
      }
    } finally {
      await engine.dispose();
    }
  }

  const nPerRatio: Record<string, number> = {};
  for (const r of plan.ratios) nPerRatio[String(r)] = plan.n(r);
  const cpus = os.cpus();
  return {
    version: 1,
    date: new Date().toISOString(),
    totalSeconds: (performance.now() - t0) / 1000,
    generateSeconds,
    model: {
      dir: plan.modelLabel ?? plan.modelDir,
      family: cfg.family,
      layers: cfg.nLayers,
      hiddenSize: cfg.hiddenSize,
      heads: cfg.nHeads,
      kvHeads: cfg.nKvHeads,
      vocabSize: cfg.vocabSize,
      window,
      sinks,
    },
    settings: {
      tasks: plan.tasks,
      ratios: plan.ratios,
      nPerRatio,
      modes: plan.modes,
      seed: plan.seed,
      topK: plan.topK,
      lexicalWeight: plan.lexicalWeight ?? DEFAULT_LEXICAL_WEIGHT,
      secondReading: plan.secondReading ?? SECOND_READING,
      maxNewTokens: plan.maxNewTokens,
      quote: quotesAnswers(cfg, plan.quote),
      threads: plan.threads ?? null,
      chunkSize: plan.chunkSize ?? null,
      cacheDir: null,
    },
    corpus: { description: plan.corpus.description, fingerprint: plan.corpus.fingerprint },
    machine: {
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpu: cpus[0]?.model ?? 'unknown',
      cores: cpus.length,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
    },
    cells: summarize(results, window),
    examples: results,
    generated: examples.map(({ docs: _docs, ...rest }) => rest),
  };
}
