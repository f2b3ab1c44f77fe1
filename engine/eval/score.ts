// Scoring: exact match after whitespace normalisation, attribution hit (top-1 passage overlaps the needle in the right
// document), and per-(task, length, mode) aggregation.
import type { Passage } from '../attribution';
import { answeredBy, type ReadingSummary } from '../engine';
import type { Span, TaskName } from './tasks';

/** Collapses whitespace runs to one space and trims. Case and punctuation are kept: answers are exact strings. */
export function normalizeAnswer(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

export function exactMatch(prediction: string, gold: string): boolean {
  return normalizeAnswer(prediction) === normalizeAnswer(gold);
}

/** Half-open ranges [a.start, a.end) and [b.start, b.end) share at least one character. */
export function rangesOverlap(a: { start: number; end: number }, b: { start: number; end: number }): boolean {
  return a.start < a.end && b.start < b.end && a.start < b.end && b.start < a.end;
}

/** Share of all lines of `docs` that overlap `span`: the hit rate of a top-1 passage picked as a random line. */
export function lineChance(docs: readonly { readonly text: string }[], span: Span | null): number | null {
  if (!span) return null;
  let total = 0;
  for (const d of docs) total += d.text.split('\n').length;
  const t = docs[span.doc].text;
  const first = t.slice(0, span.start).split('\n').length;
  const last = t.slice(0, Math.max(span.start, span.end - 1)).split('\n').length;
  return (last - first + 1) / total;
}

/** Top-1 passage in the needle's document and overlapping its span; null when there is no needle (notfound). */
export function attributionHit(passages: readonly Pick<Passage, 'doc' | 'start' | 'end'>[], needle: Span | null): boolean | null {
  if (!needle) return null;
  const top = passages[0];
  return top !== undefined && top.doc === needle.doc && rangesOverlap(top, needle);
}

export type MemoryMode = 'on' | 'off';

export interface ExampleResult {
  readonly id: string;
  readonly task: TaskName;
  readonly ratio: number;
  readonly mode: MemoryMode;
  readonly targetTokens: number;
  readonly promptTokens: number;
  readonly depth: number | null;
  readonly gold: string;
  readonly prediction: string;
  readonly correct: boolean;
  readonly hit: boolean | null;
  /** Chance level for `hit`: share of all document lines that the needle occupies. null without a needle. */
  readonly hitChance: number | null;
  readonly top1: { readonly doc: number; readonly start: number; readonly end: number; readonly score: number } | null;
  readonly prefillMs: number;
  readonly firstTokenMs: number;
  readonly decodeMs: number;
  readonly generatedTokens: number;
  readonly reusedTokens: number;
  /** Prompt tokens from the needle's first token to the end of the prompt; beyond the window when > W. */
  readonly needleDistance: number | null;
  readonly retrievedBlocks: number;
  /** Memory on: a retrieved block overlaps the needle's tokens. null when memory is off or there is no needle. */
  readonly retrievedNeedle: boolean | null;
  /**
   * The two readings (Engine AskResult.readings): the answer with the window and over a part of the context alone,
   * which was kept. Null when there was one reading; absent in runs from before it existed.
   */
  readonly readings?: readonly ReadingSummary[] | null;
}

export interface CellSummary {
  readonly task: TaskName;
  readonly ratio: number;
  readonly mode: MemoryMode;
  readonly n: number;
  readonly correct: number;
  readonly accuracy: number;
  /** Hits / examples with a needle; null when no example in the cell has one (notfound). */
  readonly hitRate: number | null;
  /** Mean chance level of a hit (a uniformly random line lies in the needle); null with hitRate. */
  readonly hitChance: number | null;
  readonly meanPromptTokens: number;
  readonly meanPrefillMs: number;
  readonly meanDecodeMs: number;
  /** Mean decode time per generated token (ms); null when nothing was generated. */
  readonly msPerToken: number | null;
  /** Examples whose needle starts more than W tokens before the end of the prompt (out of the local window). */
  readonly beyondWindow: number;
  /** Accuracy over those examples; null when there are none. */
  readonly beyondWindowAccuracy: number | null;
  /** Memory on: share of beyond-window needles that a retrieved block covered; null otherwise. */
  readonly needleRecall: number | null;
  /**
   * Block memory's second reading: examples read twice, answers the reading over the retrieved blocks alone replaced,
   * and of those the ones it turned right (the window reading was wrong) and wrong (it was right). Null: none read twice.
   */
  readonly secondReading: { readonly read: number; readonly replaced: number; readonly gained: number; readonly lost: number } | null;
}

/** ExampleResult.readings counted for CellSummary.secondReading. */
export function secondReadingCounts(rs: readonly ExampleResult[]): CellSummary['secondReading'] {
  // A reading reported alone (the second could not change it, Engine.needsSecondReading) was not read twice.
  const twice = rs.filter((r) => (r.readings?.length ?? 0) > 1);
  if (twice.length === 0) return null;
  const replaced = twice.filter((r) => answeredBy(r.readings) !== 'window');
  const windowRight = (r: ExampleResult): boolean => exactMatch(r.readings!.find((x) => x.context === 'window')!.answer, r.gold);
  return {
    read: twice.length,
    replaced: replaced.length,
    gained: replaced.filter((r) => r.correct && !windowRight(r)).length,
    lost: replaced.filter((r) => !r.correct && windowRight(r)).length,
  };
}

const mean = (xs: readonly number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

export function summarize(results: readonly ExampleResult[], window: number): CellSummary[] {
  const cells = new Map<string, ExampleResult[]>();
  for (const r of results) {
    const k = `${r.mode}\0${r.task}\0${r.ratio}`;
    const list = cells.get(k);
    if (list) list.push(r);
    else cells.set(k, [r]);
  }
  return [...cells.values()].map((rs) => {
    const hits = rs.filter((r) => r.hit !== null);
    const gen = rs.reduce((s, r) => s + r.generatedTokens, 0);
    const correct = rs.filter((r) => r.correct).length;
    const far = rs.filter((r) => r.needleDistance !== null && r.needleDistance > window);
    const probed = far.filter((r) => r.retrievedNeedle !== null);
    return {
      task: rs[0].task,
      ratio: rs[0].ratio,
      mode: rs[0].mode,
      n: rs.length,
      correct,
      accuracy: correct / rs.length,
      hitRate: hits.length ? hits.filter((r) => r.hit).length / hits.length : null,
      hitChance: hits.length ? mean(hits.map((r) => r.hitChance ?? 0)) : null,
      meanPromptTokens: mean(rs.map((r) => r.promptTokens)),
      meanPrefillMs: mean(rs.map((r) => r.prefillMs)),
      meanDecodeMs: mean(rs.map((r) => r.decodeMs)),
      msPerToken: gen > 0 ? rs.reduce((s, r) => s + r.decodeMs, 0) / gen : null,
      beyondWindow: far.length,
      beyondWindowAccuracy: far.length ? far.filter((r) => r.correct).length / far.length : null,
      needleRecall: probed.length ? probed.filter((r) => r.retrievedNeedle).length / probed.length : null,
      secondReading: secondReadingCounts(rs),
    };
  });
}
