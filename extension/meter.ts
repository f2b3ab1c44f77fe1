// Meter arithmetic: which files fit the token budget (in order, greedily), what is left out and why, how much of the
// prompt the engine's prefix cache already holds, and the status-bar / tooltip text. Pure: no `vscode`.

import type { MeterFile, MeterLeftOut, MeterView } from '../engine/protocol';

export interface MeterFileInput {
  readonly path: string;
  /** Tokens of the text itself. */
  readonly tokens: number;
  /** Header + footer tokens that frame the document in the prompt. */
  readonly overhead: number;
  /** Identity of the content (path + version/hash), for the cache estimate. */
  readonly key: string;
}

export interface MeterInput {
  /** Candidate files in prompt order. */
  readonly files: readonly MeterFileInput[];
  /** Files never counted (binary, too large, unreadable), listed so nothing is dropped silently. */
  readonly skipped: readonly { readonly path: string; readonly reason: string }[];
  readonly framePrefixTokens: number;
  readonly frameSuffixTokens: number;
  readonly questionTokens: number;
  readonly answerReserve: number;
  readonly budget: number;
  readonly window: number | null;
  readonly sinks: number;
  /** Document-key lists of prompts whose context the engine holds (most recent first). */
  readonly cachedContexts?: readonly (readonly string[])[];
}

export interface MeterResult extends MeterView {
  /** The files to send, in order. */
  readonly includedPaths: readonly string[];
}

/**
 * Packs files into the budget in order; a file that does not fit is left out (with the tokens it needed and what was
 * left) and later, smaller files may still fit. The frame, question and answer reserve are always counted.
 */
export function computeMeter(input: MeterInput): MeterResult {
  const frameTokens = input.framePrefixTokens + input.frameSuffixTokens;
  const fixed = frameTokens + input.questionTokens + input.answerReserve;
  let used = fixed;
  const files: MeterFile[] = [];
  const leftOut: MeterLeftOut[] = [];
  const included: MeterFileInput[] = [];
  for (const f of input.files) {
    const cost = f.tokens + f.overhead;
    if (used + cost <= input.budget) {
      used += cost;
      included.push(f);
      files.push({ path: f.path, tokens: cost, included: true, cached: 0 });
    } else {
      const left = Math.max(0, input.budget - used);
      leftOut.push({ path: f.path, reason: `over the token budget (needs ${formatCount(cost)}, ${formatCount(left)} left)`, tokens: cost });
      files.push({ path: f.path, tokens: cost, included: false, cached: 0 });
    }
  }
  for (const s of input.skipped) leftOut.push({ path: s.path, reason: s.reason, tokens: null });

  // The engine reuses a remembered context only when it is a prefix of the new one, at a document boundary.
  const cachedDocs = cachedPrefixDocs(
    included.map((f) => f.key),
    input.cachedContexts ?? [],
  );
  let cachedTokens = 0;
  if (cachedDocs > 0) {
    cachedTokens = input.framePrefixTokens;
    for (let i = 0; i < cachedDocs; i++) cachedTokens += included[i].tokens + included[i].overhead;
    let seen = 0;
    for (let i = 0; i < files.length && seen < cachedDocs; i++) {
      if (!files[i].included) continue;
      files[i] = { ...files[i], cached: files[i].tokens };
      seen++;
    }
  }
  const promptTokens = used - input.answerReserve;
  return {
    budget: input.budget,
    window: input.window,
    sinks: input.sinks,
    frameTokens,
    questionTokens: input.questionTokens,
    answerReserve: input.answerReserve,
    files,
    used,
    cachedTokens,
    toComputeTokens: promptTokens - cachedTokens,
    leftOut,
    includedPaths: included.map((f) => f.path),
  };
}

/** Why an ask has nothing to send (null when some file fits): no text at all, a question that alone fills the budget, or files too big. */
export function nothingToSend(m: MeterResult, gatheredFiles: number): string | null {
  if (m.includedPaths.length > 0) return null;
  if (gatheredFiles === 0) return 'no readable text files in this scope';
  if (m.frameTokens + m.questionTokens + m.answerReserve >= m.budget) {
    return (
      `the question (${formatCount(m.questionTokens)} tokens) with the template (${formatCount(m.frameTokens)}) and the answer reserve ` +
      `(${formatCount(m.answerReserve)}) leaves no room for any file in the token budget of ${formatCount(m.budget)}; ` +
      'shorten the question or raise attend.contextBudget'
    );
  }
  return 'no file fits the token budget (attend.contextBudget)';
}

/** Number of leading documents covered by the longest remembered context that is a prefix of `current`. */
export function cachedPrefixDocs(current: readonly string[], remembered: readonly (readonly string[])[]): number {
  let best = 0;
  for (const ctx of remembered) {
    if (ctx.length === 0 || ctx.length > current.length || ctx.length <= best) continue;
    if (ctx.every((k, i) => current[i] === k)) best = ctx.length;
  }
  return best;
}

/** 950, 1.2k, 12.4k, 32k, 1.5M. */
export function formatTokens(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1_000_000) return `${trimZero((n / 1000).toFixed(1))}k`;
  return `${trimZero((n / 1_000_000).toFixed(1))}M`;
}

function trimZero(s: string): string {
  return s.endsWith('.0') ? s.slice(0, -2) : s;
}

/** 12,400 */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

/** Status bar text: "Attend 12.4k / 32k · window 1k". */
export function statusText(m: MeterView): string {
  const base = `Attend ${formatTokens(m.used)} / ${formatTokens(m.budget)}`;
  return m.window === null ? base : `${base} · window ${formatTokens(m.window)}`;
}

/** Tooltip breakdown, one line per part. Paths are the caller's display paths (plain text, not markdown). */
export function breakdownLines(m: MeterView, maxFiles = 12): string[] {
  const lines = [`${formatCount(m.used)} of ${formatCount(m.budget)} tokens (${share(m.used, m.budget)})`];
  const inc = m.files.filter((f) => f.included);
  for (const f of inc.slice(0, maxFiles)) lines.push(`  ${f.path}: ${formatCount(f.tokens)}${f.cached ? ' (cached)' : ''}`);
  if (inc.length > maxFiles)
    lines.push(`  … ${inc.length - maxFiles} more files: ${formatCount(inc.slice(maxFiles).reduce((s, f) => s + f.tokens, 0))}`);
  lines.push(`  template: ${formatCount(m.frameTokens)}`);
  lines.push(`  question: ${formatCount(m.questionTokens)}`);
  lines.push(`  answer reserve: ${formatCount(m.answerReserve)}`);
  lines.push(`cached ${formatCount(m.cachedTokens)} · to compute ${formatCount(m.toComputeTokens)}`);
  lines.push(
    m.window === null
      ? 'attention: full (no sliding window)'
      : `attention window ${formatCount(m.window)} tokens + ${formatCount(m.sinks)} sink tokens: the answer sees the last ${formatCount(m.window)} tokens directly`,
  );
  if (m.leftOut.length > 0) {
    lines.push(`left out (${m.leftOut.length}):`);
    for (const l of m.leftOut.slice(0, maxFiles)) lines.push(`  ${l.path}: ${l.reason}`);
    if (m.leftOut.length > maxFiles) lines.push(`  … ${m.leftOut.length - maxFiles} more`);
  }
  return lines;
}

function share(a: number, b: number): string {
  return b > 0 ? `${((a / b) * 100).toFixed(1)}%` : '—';
}

/** The progress line: "prefill 12,400 / 48,000 tokens (30,000 reused from cache)". */
export function progressLabel(p: {
  readonly phase: 'load' | 'prefill' | 'decode';
  readonly done: number;
  readonly total: number;
  readonly reused: number;
}): string {
  switch (p.phase) {
    case 'load':
      return 'loading the model…';
    case 'prefill':
      return `prefill ${formatCount(p.done)} / ${formatCount(p.total)} tokens${p.reused > 0 ? ` (${formatCount(p.reused)} reused from cache)` : ''}`;
    case 'decode':
      return `answering: ${formatCount(p.done)} / ${formatCount(p.total)} tokens`;
  }
}

/**
 * The prompt order of gathered documents, as indices: those that fit (`fits`), least recently modified first (ties
 * keep their order), then the rest in their order. An edit invalidates the KV cache from the edited document on, so
 * the documents that change most go last: once a file has been edited, editing it again recomputes only that file
 * and what follows it, not everything after its place in path order. Which documents fit is decided before, in path
 * order, so this order never decides what is left out.
 */
export function cacheFriendlyOrder(docs: readonly { readonly modified?: number }[], fits: (i: number) => boolean): number[] {
  const idx = Array.from(docs.keys());
  const kept = idx.filter(fits).sort((a, b) => (docs[a].modified ?? 0) - (docs[b].modified ?? 0) || a - b);
  return [...kept, ...idx.filter((i) => !fits(i))];
}
