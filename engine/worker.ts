#!/usr/bin/env node
// The engine child process: JSON-RPC over stdio (engine/protocol.ts), one Engine, progress and tokens streamed as
// notifications, $/cancelRequest turned into an AbortSignal. stdout carries the RPC stream: everything else goes to
// stderr, including console.log from any library.

import * as path from 'node:path';
import {
  createMessageConnection,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
  type CancellationToken,
  type MessageConnection,
} from 'vscode-jsonrpc/node';
import {
  DEFAULT_LEXICAL_WEIGHT,
  DEFAULT_MEMORY_TOP_K,
  Engine,
  CancelledError,
  checkVocabulary,
  resolveAttention,
  SECOND_READING,
  answeredBy,
  type AskResult,
} from './engine';
import { loadConfig } from './config';
import { loadTokenizer } from './tokenizer';
import { DOC_FOOTER, QUESTION_PREFIX, docHeader, loadPromptFrame, type Prompt, type PromptFrame } from './prompt';
import type { ModelConfig, Tokenizer } from './types';
import type { TokenAttribution } from './attribution';
import {
  EngineErrorCode,
  EngineMethod,
  EngineNotification,
  MAX_QUESTION_CHARS,
  engineParamsGuards,
  sameLoadParams,
  type AskParams,
  type AskResultWire,
  type ClearCacheResult,
  type CountTokensParams,
  type CountTokensResult,
  type EngineErrorData,
  type EngineNotifications,
  type EngineRequests,
  type LoadParams,
  type ModelInfo,
  type WireReading,
  type WireSourceSpan,
} from './protocol';

/** Source spans kept per streamed answer token (the strongest). */
const SPANS_PER_TOKEN = 8;

// Libraries that log with console.log must not corrupt the RPC stream.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

/** The model as far as it is loaded: config and tokenizer always, the Engine (weights) on demand. */
interface Loaded {
  readonly params: LoadParams;
  readonly dir: string;
  readonly cfg: ModelConfig;
  readonly tokenizer: Tokenizer;
  readonly frame: PromptFrame;
  readonly window: number | null;
  readonly sinks: number;
  engine: Engine | null;
  engineLoading: Promise<Engine> | null;
}

class EngineError extends ResponseError<EngineErrorData> {
  constructor(code: number, data: EngineErrorData) {
    super(code, data.file ? `${data.file}: ${data.problem}` : data.problem, data);
  }
}

/** Pulls the file an engine error names (messages read "<file>: <problem>" or "<what> in <dir>: <problem>"). */
export function describeError(e: unknown, modelDir: string | null): EngineErrorData {
  if (e instanceof CancelledError) return { problem: 'cancelled', kind: 'cancelled' };
  const message = e instanceof Error ? e.message : String(e);
  const named = /^((?:[A-Za-z]:)?[\\/][^:]*?|[^:\s]+\.(?:json|safetensors)(?: in [^:]+)?): (.*)$/s.exec(message);
  if (named) return { file: named[1], problem: named[2], kind: 'bad-model' };
  return { ...(modelDir ? { file: modelDir } : {}), problem: message, kind: modelDir ? 'bad-model' : 'internal' };
}

/** Maps one answer token's attention (prompt positions) to document spans. */
export function sourceSpans(att: TokenAttribution, prompt: Prompt, limit = SPANS_PER_TOKEN): WireSourceSpan[] {
  const out: WireSourceSpan[] = [];
  for (let i = 0; i < att.positions.length && out.length < limit; i++) {
    const p = att.positions[i];
    const doc = prompt.origin.doc[p];
    if (doc < 0) continue;
    out.push({ doc, start: prompt.origin.start[p], end: prompt.origin.end[p], weight: att.weights[i] });
  }
  return out;
}

export class Worker {
  private loaded: Loaded | null = null;
  /** Asks run one at a time: the decoder is shared and a second prefill would only halve both. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly notify: <N extends keyof EngineNotifications>(method: N, params: EngineNotifications[N]) => void) {}

  load(params: LoadParams): ModelInfo | Promise<ModelInfo> {
    if (!this.loaded || !sameLoadParams(this.loaded.params, params)) {
      const dir = path.resolve(params.modelDir);
      const old = this.loaded;
      let cfg: ModelConfig;
      let tokenizer: Tokenizer;
      let frame: PromptFrame;
      let attention: { window: number | null; sinks: number };
      try {
        cfg = loadConfig(dir);
        tokenizer = loadTokenizer(dir);
        checkVocabulary(cfg, tokenizer, dir); // here too, so counting (the meter) already refuses a mismatched pair
        frame = loadPromptFrame(dir);
        attention = resolveAttention(cfg, {
          ...(params.window !== null ? { window: params.window } : {}),
          ...(params.sinks !== null ? { sinks: params.sinks } : {}),
        });
      } catch (e) {
        throw new EngineError(EngineErrorCode.badModel, describeError(e, dir));
      }
      this.loaded = {
        params,
        dir,
        cfg,
        tokenizer,
        frame,
        window: attention.window,
        sinks: attention.sinks,
        engine: null,
        engineLoading: null,
      };
      if (old?.engine) void old.engine.dispose();
    }
    const loaded = this.loaded;
    if (!params.weights) return this.info(loaded);
    return this.engineOf(loaded).then((engine) => {
      // Loading ahead of a question (the extension does while it is typed): rehearse meanwhile (Engine.rehearse, once
      // per engine). An ask that comes sooner stops it; an engine first loaded by an ask does not rehearse.
      void engine.rehearse();
      return this.info(loaded);
    });
  }

  private info(l: Loaded): ModelInfo {
    return {
      modelDir: l.dir,
      family: l.cfg.family,
      maxPositionEmbeddings: l.cfg.maxPositionEmbeddings,
      window: l.window,
      sinks: l.sinks,
      vocabSize: l.cfg.vocabSize,
      weightsLoaded: l.engine !== null,
    };
  }

  private engineOf(l: Loaded): Promise<Engine> {
    if (l.engine) return Promise.resolve(l.engine);
    if (!l.engineLoading) {
      l.engineLoading = Engine.load({
        modelDir: l.dir,
        window: l.window,
        sinks: l.sinks,
        ...(l.params.threads ? { threads: l.params.threads } : {}),
        cacheDir: l.params.cacheDir ?? null,
        ...(l.params.cacheMaxBytes ? { cacheMaxBytes: l.params.cacheMaxBytes } : {}),
        ...(l.params.blockSize !== undefined ? { blockSize: l.params.blockSize } : {}),
        memory:
          l.params.memoryTopK === 0
            ? null
            : {
                topK: l.params.memoryTopK ?? DEFAULT_MEMORY_TOP_K,
                lexicalWeight: l.params.memoryLexicalWeight ?? DEFAULT_LEXICAL_WEIGHT,
                secondReading: l.params.memorySecondReading ?? SECOND_READING,
              },
        warn: (message) => this.notify(EngineNotification.log, { level: 'warn', message }),
      }).then(
        (engine) => {
          if (this.loaded === l) l.engine = engine;
          else void engine.dispose(); // a different model was loaded meanwhile
          return engine;
        },
        (e: unknown) => {
          l.engineLoading = null;
          throw new EngineError(EngineErrorCode.badModel, describeError(e, l.dir));
        },
      );
    }
    return l.engineLoading;
  }

  private requireLoaded(): Loaded {
    if (!this.loaded)
      throw new EngineError(EngineErrorCode.notLoaded, { problem: 'no model loaded: send `load` first', kind: 'not-loaded' });
    return this.loaded;
  }

  countTokens(params: CountTokensParams): CountTokensResult {
    const l = this.requireLoaded();
    const tok = l.tokenizer;
    const footer = tok.encode(DOC_FOOTER).length;
    return {
      perFile: params.docs.map((d) => ({
        path: d.path,
        // A document asked about before has its encoding remembered by the engine (when loaded): no tokenizing again.
        tokens: l.engine?.rememberedTokenCount(d.text) ?? tok.count(d.text),
        overhead: tok.encode(docHeader(d.path)).length + footer,
      })),
      framePrefixTokens: tok.encode(l.frame.prefix, { allowSpecial: true }).length,
      frameSuffixTokens: tok.encode(l.frame.suffix, { allowSpecial: true }).length,
      questionTokens: tok.encode(QUESTION_PREFIX + params.question).length,
      model: this.info(l),
    };
  }

  ask(params: AskParams, token: CancellationToken): Promise<AskResultWire> {
    const run = this.queue.then(() => this.runAsk(params, token));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async runAsk(params: AskParams, token: CancellationToken): Promise<AskResultWire> {
    const l = this.requireLoaded();
    const abort = new AbortController();
    const sub = token.onCancellationRequested(() => abort.abort());
    if (token.isCancellationRequested) abort.abort();
    const cancelled = (): EngineError => new EngineError(EngineErrorCode.cancelled, { problem: 'cancelled', kind: 'cancelled' });
    try {
      if (abort.signal.aborted) throw cancelled();
      if (!l.engine) this.notify(EngineNotification.progress, { askId: params.askId, phase: 'load', done: 0, total: 1, reused: 0 });
      const engine = await this.engineOf(l);
      if (abort.signal.aborted) throw cancelled();
      let prompt: Prompt | null = null;
      const result = await engine.ask(
        {
          docs: params.docs,
          question: params.question,
          maxNewTokens: params.maxNewTokens,
          ...(params.temperature !== undefined ? { sampling: { temperature: params.temperature, topP: 1, seed: params.seed ?? 0 } } : {}),
          ...(params.stop ? { stop: params.stop } : {}),
          ...(params.quote !== undefined ? { quote: params.quote } : {}),
        },
        {
          signal: abort.signal,
          onPrompt: (p) => (prompt = p),
          onProgress: (p) => this.notify(EngineNotification.progress, { askId: params.askId, ...p }),
          onToken: (t) =>
            this.notify(EngineNotification.token, {
              askId: params.askId,
              index: t.index,
              text: t.text,
              sources: prompt ? sourceSpans(t.attribution, prompt) : [],
            }),
        },
      );
      return {
        askId: params.askId,
        answer: result.answer,
        stopReason: result.stopReason,
        promptTokens: result.promptTokens,
        reusedTokens: result.reusedTokens,
        computedTokens: result.computedTokens,
        generatedTokens: result.generatedTokens,
        timings: result.timings,
        passages: result.passages.map((p) => ({ ...p, supports: [...p.supports] })),
        tokens: result.tokens.map((t) => ({ text: t.text, sources: sourceSpans(t.attribution, result.prompt) })),
        quote: result.quote,
        ...readingOf(result),
      };
    } catch (e) {
      if (e instanceof ResponseError) throw e;
      if (e instanceof CancelledError) throw cancelled();
      const data = describeError(e, null);
      throw new EngineError(EngineErrorCode.internal, data);
    } finally {
      sub.dispose();
    }
  }

  /** Empties the engine's KV cache (memory and disk). The store belongs to the Engine, so this loads it if needed. */
  async clearCache(): Promise<ClearCacheResult> {
    const l = this.requireLoaded();
    const engine = await this.engineOf(l);
    engine.clearCache();
    return { cleared: true, cacheDir: l.params.cacheDir ?? null };
  }

  async dispose(): Promise<void> {
    const engine = this.loaded?.engine;
    this.loaded = null;
    if (engine) await engine.dispose();
  }
}

/** Says what is wrong with a request its guard refused, in words for the cases a user can cause (the question). */
export function malformedProblem(method: string, raw: unknown): string {
  const q = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>)['question'] : undefined;
  if ((method === EngineMethod.ask || method === EngineMethod.countTokens) && typeof q === 'string') {
    if (q.length > MAX_QUESTION_CHARS)
      return `the question is ${q.length.toLocaleString('en-US')} characters long; the limit is ${MAX_QUESTION_CHARS.toLocaleString('en-US')}`;
    if (method === EngineMethod.ask && q.trim() === '') return 'the question is empty';
  }
  return `malformed ${method} request`;
}

type Handler<M extends keyof EngineRequests> = (
  params: EngineRequests[M][0],
  token: CancellationToken,
) => EngineRequests[M][1] | Promise<EngineRequests[M][1]>;

function serve<M extends keyof EngineRequests>(conn: MessageConnection, method: M, handler: Handler<M>): void {
  conn.onRequest(method, (raw: unknown, token: CancellationToken) => {
    const guard = engineParamsGuards[method];
    if (!guard(raw)) {
      throw new EngineError(EngineErrorCode.badRequest, { problem: malformedProblem(method, raw), kind: 'bad-request' });
    }
    return handler(raw, token);
  });
}

export function main(): void {
  const conn = createMessageConnection(new StreamMessageReader(process.stdin), new StreamMessageWriter(process.stdout));
  const worker = new Worker((method, params) => void conn.sendNotification(method, params));
  serve(conn, EngineMethod.load, (p) => worker.load(p));
  serve(conn, EngineMethod.countTokens, (p) => worker.countTokens(p));
  serve(conn, EngineMethod.ask, (p, token) => worker.ask(p, token));
  serve(conn, EngineMethod.clearCache, () => worker.clearCache());
  serve(conn, EngineMethod.shutdown, async () => {
    await worker.dispose();
    // The client closes our stdin once it has the reply (onClose exits); the timer covers a client that does not.
    setTimeout(() => process.exit(0), 2000).unref();
    return null;
  });
  conn.onClose(() => process.exit(0)); // the extension went away
  process.on('uncaughtException', (e) => {
    process.stderr.write(`attend worker: uncaught ${e.stack ?? String(e)}\n`);
    process.exit(70);
  });
  conn.listen();
  process.stderr.write(`attend worker: ready (pid ${process.pid}, node ${process.version})\n`);
}

/** Which reading answered, when the question was read twice (protocol WireReading). */
export function readingOf(result: Pick<AskResult, 'readings'>): { reading?: WireReading } {
  const by = answeredBy(result.readings);
  return by ? { reading: by } : {};
}

if (require.main === module) main();
