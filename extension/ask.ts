// One question, start to finish: gather the scope, count with the engine's tokenizer, pack the budget (naming what
// is left out), stream the answer into the panel under a cancellable progress notification, then show the passages
// in the panel and as editor highlights.

import * as vscode from 'vscode';
import { randomBytes } from 'node:crypto';
import type { Ctx } from './context';
import { gather, type Gathered, type ScopeSpec } from './sources';
import { cacheFriendlyOrder, computeMeter, formatCount, nothingToSend, progressLabel, type MeterResult } from './meter';
import { sentenceViews, splitSentences, supportedSpan } from './sentences';
import { EngineRequestError } from './engineClient';
import type { AnswerSummary, AskResultWire, PassageView, WirePassage } from '../engine/protocol';
import { levelOf, type PassageMark } from './decorations';
import type { AskEvent, AskOutcome, HighlightView } from './api';

const SNIPPET_LINES = 4;

/**
 * Counts the gathered documents and packs them into the budget (in path order), then puts what fits in prompt order
 * (cacheFriendlyOrder). Returns the meter and the documents in that order.
 */
export async function measure(ctx: Ctx, gathered: Gathered, question: string): Promise<{ meter: MeterResult; gathered: Gathered }> {
  const counts = await ctx.client.countTokens({ docs: gathered.docs.map((d) => ({ path: d.path, text: d.text })), question });
  const pack = (order: readonly number[]): MeterResult => packMeter(ctx, gathered, order, counts);
  const first = pack(Array.from(gathered.docs.keys()));
  const fits = new Set(first.includedPaths);
  const order = cacheFriendlyOrder(gathered.docs, (i) => fits.has(gathered.docs[i].path));
  const reordered = order.some((j, i) => j !== i);
  const meter = reordered ? pack(order) : first;
  ctx.lastMeter = meter;
  return { meter, gathered: reordered ? { ...gathered, docs: order.map((j) => gathered.docs[j]) } : gathered };
}

function packMeter(
  ctx: Ctx,
  gathered: Gathered,
  order: readonly number[],
  counts: Awaited<ReturnType<Ctx['client']['countTokens']>>,
): MeterResult {
  const s = ctx.settings;
  return computeMeter({
    files: order.map((i) => ({
      path: gathered.docs[i].path,
      tokens: counts.perFile[i].tokens,
      overhead: counts.perFile[i].overhead,
      key: gathered.docs[i].key,
    })),
    skipped: gathered.skipped,
    framePrefixTokens: counts.framePrefixTokens,
    frameSuffixTokens: counts.frameSuffixTokens,
    questionTokens: counts.questionTokens,
    answerReserve: s.maxNewTokens,
    budget: s.contextBudget ?? counts.model.maxPositionEmbeddings,
    window: counts.model.window,
    sinks: counts.model.sinks,
    cachedContexts: ctx.cachedContexts,
  });
}

export function describeError(e: unknown): string {
  if (e instanceof EngineRequestError) return e.data.file ? `${e.data.file}: ${e.data.problem}` : e.data.problem;
  return e instanceof Error ? e.message : String(e);
}

export async function askQuestion(ctx: Ctx, scope: ScopeSpec, question: string): Promise<AskOutcome> {
  ctx.currentAsk?.abort.abort();
  const abort = new AbortController();
  const askId = randomBytes(8).toString('hex');
  ctx.currentAsk = { askId, abort };
  const emit = (e: AskEvent): void => ctx.askEvents.fire(e);
  let outcome: AskOutcome = {
    askId,
    status: 'cancelled',
    question,
    scope: '',
    meter: null,
    answer: '',
    summary: null,
    passages: [],
    highlights: [],
    error: null,
  };
  emit({ kind: 'start', askId, question });
  const settings = ctx.settings;
  if (settings.ignoredWorkspaceModelPath) {
    void vscode.window.showInformationMessage(
      `Attend: this workspace is not trusted, so its attend.model.path (${settings.ignoredWorkspaceModelPath}) is ignored; using ${settings.modelDir}.`,
    );
  }
  const panel = ctx.showPanel();
  try {
    await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'Attend', cancellable: true },
      async (progress, token) => {
        token.onCancellationRequested(() => abort.abort());
        progress.report({ message: 'gathering sources…' });
        let gathered = await gather(scope, settings, token);
        outcome = { ...outcome, scope: gathered.label };
        if (abort.signal.aborted) return;
        progress.report({ message: `counting tokens of ${gathered.docs.length} file(s)…` });
        const measured = await measure(ctx, gathered, question);
        const meter = measured.meter;
        gathered = measured.gathered;
        outcome = { ...outcome, meter };
        const included = new Set(meter.includedPaths);
        const docs = gathered.docs.filter((d) => included.has(d.path));
        panel.post({ type: 'answerStart', askId, question, scope: gathered.label });
        panel.post({ type: 'meter', meter });
        if (meter.leftOut.length > 0) {
          ctx.output.appendLine(`[${askId}] left out ${meter.leftOut.length} file(s):`);
          for (const l of meter.leftOut) ctx.output.appendLine(`  ${l.path}: ${l.reason}`);
        }
        if (docs.length === 0) {
          const why = nothingToSend(meter, gathered.docs.length) ?? 'nothing to send';
          panel.post({ type: 'answerError', askId, message: why });
          void vscode.window.showWarningMessage(`Attend: ${why}.`);
          outcome = { ...outcome, status: 'nothing-to-send', error: why };
          return;
        }
        let lastPct = 0;
        const result = await ctx.client.ask(
          {
            askId,
            docs: docs.map((d) => ({ path: d.path, text: d.text })),
            question,
            maxNewTokens: settings.maxNewTokens,
            ...(settings.quote !== null ? { quote: settings.quote } : {}),
          },
          {
            signal: abort.signal,
            onProgress: (p) => {
              const label = progressLabel(p);
              const pct = p.phase === 'prefill' && p.total > 0 ? (p.done / p.total) * 100 : lastPct;
              progress.report({ message: label, increment: Math.max(0, pct - lastPct) });
              lastPct = pct;
              panel.post({ type: 'answerProgress', askId, label });
              emit({ kind: 'progress', askId, phase: p.phase, done: p.done, total: p.total, reused: p.reused });
            },
            onToken: (t) => {
              panel.post({ type: 'answerToken', askId, index: t.index, text: t.text });
              emit({ kind: 'token', askId, index: t.index, text: t.text });
            },
          },
        );
        ctx.rememberContext(docs.map((d) => d.key));
        const done = await finish(ctx, askId, question, { ...gathered, docs }, result);
        outcome = { ...outcome, status: 'answered', answer: result.answer, passages: result.passages, ...done };
      },
    );
    // Cancelled before the engine was asked (while gathering): the panel still says what happened.
    if (outcome.status === 'cancelled') panel.post({ type: 'answerError', askId, message: 'Cancelled.' });
  } catch (e) {
    const cancelled = e instanceof EngineRequestError && e.cancelled;
    const message = cancelled ? 'Cancelled.' : describeError(e);
    panel.post({ type: 'answerError', askId, message });
    outcome = { ...outcome, status: cancelled ? 'cancelled' : 'failed', error: cancelled ? null : message };
    if (!cancelled) {
      ctx.output.appendLine(`[${askId}] ${message}`);
      void vscode.window.showErrorMessage(`Attend: ${message}`, 'Show Log').then((pick) => {
        if (pick) ctx.output.show(true);
      });
    }
  } finally {
    if (ctx.currentAsk?.askId === askId) ctx.currentAsk = null;
    emit({ kind: 'end', askId, status: outcome.status });
  }
  return outcome;
}

async function finish(
  ctx: Ctx,
  askId: string,
  question: string,
  gathered: Gathered,
  result: AskResultWire,
): Promise<{ summary: AnswerSummary; highlights: HighlightView[] }> {
  const panel = ctx.showPanel();
  const sentences = splitSentences(result.tokens);
  const views: PassageView[] = result.passages.map((p, index) => ({
    index,
    path: p.path,
    startLine: lineInFile(gathered, p),
    endLine: lineInFile(gathered, p) + (p.endLine - p.startLine),
    score: p.score,
    snippet: snippet(gathered.docs[p.doc]?.text ?? '', p),
  }));
  panel.post({ type: 'passages', askId, passages: views });
  const summary: AnswerSummary = {
    stopReason: result.stopReason,
    promptTokens: result.promptTokens,
    reusedTokens: result.reusedTokens,
    computedTokens: result.computedTokens,
    generatedTokens: result.generatedTokens,
    prefillMs: result.timings.prefillMs,
    decodeMs: result.timings.decodeMs,
    quote: result.quote,
    ...(result.reading ? { reading: result.reading } : {}),
  };
  panel.post({ type: 'answerDone', askId, answer: result.answer, sentences: sentenceViews(result.tokens, result.passages), summary });
  ctx.output.appendLine(
    `[${askId}] ${formatCount(result.promptTokens)} prompt tokens (${formatCount(result.reusedTokens)} reused, ${formatCount(result.computedTokens)} computed), ` +
      `${result.generatedTokens} generated, stop: ${result.stopReason}, quote: ${result.quote}`,
  );

  const top = result.passages.reduce((m, p) => Math.max(m, p.score), 0) || 1;
  const marks: PassageMark[] = [];
  for (const [index, p] of result.passages.entries()) {
    const doc = gathered.docs[p.doc];
    if (!doc) continue;
    const range = { start: doc.baseOffset + p.start, end: doc.baseOffset + p.end };
    // Only mark text that is still what the model read.
    const live = vscode.workspace.textDocuments.find((d) => d.uri.toString() === doc.uri.toString());
    if (live && live.getText().slice(range.start, range.end) !== doc.text.slice(p.start, p.end)) continue;
    marks.push({
      askId,
      index,
      uri: doc.uri.toString(),
      range,
      score: p.score,
      strength: p.score / top,
      path: doc.path,
      startLine: views[index].startLine,
      endLine: views[index].endLine,
      supported: supportedSpan(result.answer, sentences, p),
    });
  }
  ctx.decorations.set(marks);
  await ctx.remember({
    askId,
    question,
    scope: gathered.scope,
    label: gathered.label,
    at: Date.now(),
    passages: views.map((v, i) => ({
      uri: gathered.docs[result.passages[i].doc]?.uri.toString() ?? '',
      startLine: v.startLine,
      endLine: v.endLine,
    })),
  });
  const highlights = marks.map((m) => {
    const live = vscode.workspace.textDocuments.find((d) => d.uri.toString() === m.uri);
    return {
      index: m.index,
      uri: m.uri,
      startLine: live ? live.positionAt(m.range.start).line : m.startLine,
      endLine: live ? live.positionAt(m.range.end).line : m.endLine,
      level: levelOf(m.strength),
    };
  });
  return { summary, highlights };
}

/** The passage's first line in the file (a selection starts part-way down its file). */
function lineInFile(gathered: Gathered, p: WirePassage): number {
  const doc = gathered.docs[p.doc];
  if (!doc || doc.baseOffset === 0) return p.startLine;
  const live = vscode.workspace.textDocuments.find((d) => d.uri.toString() === doc.uri.toString());
  return live ? live.positionAt(doc.baseOffset + p.start).line : p.startLine;
}

function snippet(text: string, p: WirePassage): string {
  const lines = text.slice(p.start, p.end).split(/\r\n|\r|\n/);
  const shown = lines.slice(0, SNIPPET_LINES).map((l) => (l.length > 200 ? `${l.slice(0, 199)}…` : l));
  if (lines.length > SNIPPET_LINES) shown.push('…');
  return shown.join('\n');
}

/** Opens the file of a ranked passage and selects its lines. */
export async function revealPassage(ctx: Ctx, askId: string, index: number): Promise<void> {
  const entry = ctx.history.find((h) => h.askId === askId);
  const p = entry?.passages[index];
  if (!p || !p.uri) {
    void vscode.window.showInformationMessage('Attend: that passage is from an answer that is no longer available.');
    return;
  }
  const document = await vscode.workspace.openTextDocument(vscode.Uri.parse(p.uri));
  const range = new vscode.Range(p.startLine, 0, p.endLine, document.lineAt(Math.min(p.endLine, document.lineCount - 1)).text.length);
  await vscode.window.showTextDocument(document, { selection: range, viewColumn: vscode.ViewColumn.One, preserveFocus: false });
}
