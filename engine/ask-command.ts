// `attend ask`: streams an answer about files to stdout, then the attributed passages and what the cache saved.
import * as path from 'node:path';
import { answeredBy, DEFAULT_LEXICAL_WEIGHT, DEFAULT_MEMORY_TOP_K, Engine } from './engine';
import { defaultCacheDir } from './kvstore';
import { gatherSources, DEFAULT_MAX_FILE_BYTES } from './sources';
import {
  type Command,
  UsageError,
  displayPath,
  formatTable,
  nonNegativeNumber,
  onOff,
  parseCommandArgs,
  positiveInt,
  resolveModelDir,
} from './cli-common';

function nonNegativeInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag} must be a non-negative integer, got "${value}"`);
  return Number(value);
}

export const askCommand: Command = {
  summary: 'answer a question about files, streaming, then list the attributed passages',
  usage:
    'attend ask [--model DIR] --file F [--file F]... [--max-new N] [--window N] [--sinks N] [--memory-top-k K] [--memory-lexical-weight W] [--no-memory] [--second-reading on|off] [--quote on|off] [--cache DIR | --no-cache] [--threads N] [--json] "question"',
  async run(args, ctx) {
    const { values, positionals } = parseCommandArgs(args, {
      model: { type: 'string' },
      file: { type: 'string', multiple: true },
      'max-new': { type: 'string' },
      window: { type: 'string' },
      sinks: { type: 'string' },
      'memory-top-k': { type: 'string' },
      'memory-lexical-weight': { type: 'string' },
      'no-memory': { type: 'boolean' },
      quote: { type: 'string' },
      'second-reading': { type: 'string' },
      cache: { type: 'string' },
      'no-cache': { type: 'boolean' },
      threads: { type: 'string' },
      json: { type: 'boolean' },
    });
    const question = positionals.join(' ').trim();
    if (!question) throw new UsageError('give the question as the last argument');
    if (!values.file?.length) throw new UsageError('give at least one --file');
    const modelDir = resolveModelDir(values.model, ctx);
    const { cwd } = ctx.io;
    const gathered = gatherSources(values.file, { cwd, maxFileBytes: DEFAULT_MAX_FILE_BYTES });
    for (const s of gathered.skipped) ctx.io.stderr(`attend ask: skipped ${displayPath(s.path, cwd)}: ${s.reason}\n`);
    if (gathered.documents.length === 0) throw new Error('none of the files could be read as text');
    // Stable order (by path) so the same files give the same prefix and the cache is reused.
    const docs = gathered.documents
      .map((d) => ({ path: displayPath(d.path, cwd), text: d.text }))
      .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

    const window = positiveInt(values.window, '--window');
    const sinks = nonNegativeInt(values.sinks, '--sinks');
    const topK = positiveInt(values['memory-top-k'], '--memory-top-k');
    const threads = positiveInt(values.threads, '--threads');
    const lexicalWeight = nonNegativeNumber(values['memory-lexical-weight'], '--memory-lexical-weight');
    const on = onOff(values.quote, '--quote');
    const quote = on === undefined ? {} : { quote: on };
    const secondReading = onOff(values['second-reading'], '--second-reading');
    const engine = await Engine.load({
      modelDir,
      ...(window !== undefined ? { window } : {}),
      ...(sinks !== undefined ? { sinks } : {}),
      ...(threads !== undefined ? { threads } : {}),
      cacheDir: values['no-cache'] ? null : path.resolve(cwd, values.cache ?? defaultCacheDir()),
      memory: values['no-memory']
        ? null
        : {
            topK: topK ?? DEFAULT_MEMORY_TOP_K,
            lexicalWeight: lexicalWeight ?? DEFAULT_LEXICAL_WEIGHT,
            ...(secondReading !== undefined ? { secondReading } : {}),
          },
      warn: (m) => ctx.io.stderr(`${m}\n`),
    });
    try {
      const ac = new AbortController();
      const onSigint = (): void => ac.abort();
      process.once('SIGINT', onSigint);
      let result;
      try {
        result = await engine.ask(
          { docs, question, maxNewTokens: positiveInt(values['max-new'], '--max-new') ?? 64, ...quote },
          {
            signal: ac.signal,
            onToken: (t) => {
              if (!values.json) ctx.io.stdout(t.text);
            },
          },
        );
      } finally {
        process.removeListener('SIGINT', onSigint);
      }
      const lineOf = (p: (typeof result.passages)[number]): string =>
        `${p.path}:${p.startLine + 1}${p.endLine > p.startLine ? `-${p.endLine + 1}` : ''}`;
      if (values.json) {
        ctx.io.stdout(
          JSON.stringify(
            {
              answer: result.answer,
              stopReason: result.stopReason,
              promptTokens: result.promptTokens,
              reusedTokens: result.reusedTokens,
              reusedFrom: result.reusedFrom,
              computedTokens: result.computedTokens,
              retrieved: result.retrieved,
              readings: result.readings,
              quote: result.quote,
              timings: result.timings,
              passages: result.passages.map((p) => ({ ...p, location: lineOf(p), text: docs[p.doc].text.slice(p.start, p.end) })),
            },
            null,
            2,
          ) + '\n',
        );
        return 0;
      }
      ctx.io.stdout('\n\n');
      const rows = result.passages.map((p) => [
        lineOf(p),
        (p.score * 100).toFixed(1) + '%',
        docs[p.doc].text.slice(p.start, p.end).replace(/\s+/g, ' ').slice(0, 60),
      ]);
      if (rows.length) ctx.io.stdout(formatTable(['passage', 'score', 'text'], rows, new Set([1])));
      const t = result.timings;
      const by = answeredBy(result.readings);
      ctx.io.stdout(
        `\n${result.promptTokens.toLocaleString('en-US')} prompt tokens: ${result.reusedTokens.toLocaleString('en-US')} reused (${result.reusedFrom}), ` +
          `${result.computedTokens.toLocaleString('en-US')} computed; ${result.generatedTokens} generated (${result.stopReason}); ` +
          `first token ${(t.firstTokenMs / 1000).toFixed(2)} s, decode ${(t.decodeMs / 1000).toFixed(2)} s` +
          (result.quote === 'released' ? '; no quote of the documents continued the answer, the rest is unconstrained' : '') +
          (result.retrieved.length ? `; memory brought back ${result.retrieved.map((b) => `[${b.start}, ${b.end})`).join(' ')}` : '') +
          (by === 'memory' ? ' (answered from those blocks alone: the likelier reading)' : '') +
          (by === 'passage' ? '; answered from the passage that best matches the question alone (the likelier reading)' : '') +
          '\n',
      );
      return result.stopReason === 'cancelled' ? 130 : 0;
    } finally {
      await engine.dispose();
    }
  },
};
