// Quoted answers: decoding for a lookup model, whose every answer is a verbatim span of the documents or one of a few
// fixed replies ("not found"). Each step keeps the model's best token whose text still continues such an answer, and
// the answer may only end where a quoted span ends at a word boundary. A small model's slips (a value copied with a
// letter changed, cut off mid-word, or started inside a word) become the span the model was copying; which span, and
// whether to answer at all, stays the model's choice.
import type { ModelConfig } from './types';

/** Whether an ask decodes quoted answers: as asked, else as the model's config.json says (`attend_quote_answers`). */
export function quotesAnswers(cfg: Pick<ModelConfig, 'quoteReplies'>, requested?: boolean): boolean {
  return requested ?? cfg.quoteReplies !== null;
}

/** Letters and digits: a quoted span starts and ends next to anything else (or the text's edge). */
const WORD_CHAR = /[\p{L}\p{N}]/u;

function isWordChar(ch: string | undefined): boolean {
  return ch !== undefined && WORD_CHAR.test(ch);
}

/** Whitespace runs become one space: a span may cross a line break in the document and still be quoted. */
export function foldSpace(text: string): string {
  return text.replace(/\s+/g, ' ');
}

/**
 * What quotes are matched on: folded whitespace and lower case, so a value that opens a sentence ("Thistle is the
 * mascot") may be answered as the model learned to write it ("thistle").
 */
function matchForm(text: string): string {
  return foldSpace(text).toLowerCase();
}

/** Whether `answer` is one of the fixed replies (`not found`), matched as quotes are (case and whitespace folded). */
export function isFixedReply(answer: string, replies: readonly string[]): boolean {
  const a = matchForm(answer).trim();
  return replies.some((r) => matchForm(r).trim() === a);
}

/** Candidates looked at first per step, best logit first. */
export const QUOTE_CANDIDATES = 64;
/**
 * How far down the model's ranking a step looks when none of the first QUOTE_CANDIDATES may follow (all of the
 * built-in model's 2,048 ids; a bound on the work per step for vocabularies of 150k).
 */
export const QUOTE_SEARCH = 4096;
/** Leading tokens with no visible text (spaces, line breaks) an answer may start with. */
const MAX_BLANK_STEPS = 3;

/** Documents and fixed replies folded for matching (QuoteConstraint.prepare). */
export interface PreparedQuote {
  readonly text: string;
  readonly replies: readonly string[];
}

export class QuoteConstraint {
  private readonly text: string;
  private readonly replies: readonly string[];
  /** Where the answer so far occurs, starting at a word boundary; null before the answer has any visible text. */
  private starts: number[] | null = null;
  private answer = '';
  /** Set when no candidate could continue a quote: the rest of the answer is the model's own. */
  private released = false;
  /** Tokens committed while the answer was still empty (leading whitespace); a few are allowed, not a whole answer. */
  private blankSteps = 0;

  /**
   * @param sources the documents' texts (a quote never spans two of them), or QuoteConstraint.prepare's result for
   *   them, so that several readings of one ask fold the documents once
   * @param replies fixed answers that need not be quoted ("not found"); with prepared sources, theirs
   */
  constructor(sources: readonly string[] | PreparedQuote, replies: readonly string[] = []) {
    const prepared = 'text' in sources ? sources : QuoteConstraint.prepare(sources, replies);
    this.text = prepared.text;
    this.replies = prepared.replies;
  }

  /** The documents and replies in the form quotes are matched on. */
  static prepare(sources: readonly string[], replies: readonly string[]): PreparedQuote {
    // NUL never occurs in a folded answer, so no match runs from one document into the next.
    return { text: sources.map(matchForm).join('\u0000'), replies: replies.map(matchForm) };
  }

  get active(): boolean {
    return !this.released;
  }

  /** The visible answer a candidate would make: leading space dropped, whitespace folded. */
  static visible(raw: string): string {
    return foldSpace(raw.trimStart());
  }

  /** Occurrences of `answer` at a word boundary, narrowed from the current answer's when it extends it. */
  private occurrences(answer: string): number[] {
    const out: number[] = [];
    if (this.starts !== null && answer.startsWith(this.answer)) {
      for (const p of this.starts) if (this.text.startsWith(answer, p)) out.push(p);
      return out;
    }
    for (let p = this.text.indexOf(answer); p >= 0; p = this.text.indexOf(answer, p + 1)) {
      if (!(isWordChar(answer[0]) && isWordChar(this.text[p - 1]))) out.push(p);
    }
    return out;
  }

  /**
   * May the answer read `answer` (visible form) after this token? Trailing U+FFFD are bytes of a character still being
   * decoded: allowed (up to 3) where the text that follows could be that character, i.e. is not ASCII.
   */
  allows(answer: string): boolean {
    const pending = answer.length - answer.replace(/\uFFFD+$/, '').length;
    const a = matchForm(answer.slice(0, answer.length - pending));
    if (pending > 3) return false;
    const next = (s: string, at: number) => pending === 0 || s.charCodeAt(at) > 0x7f;
    if (a === '' && this.blankSteps >= MAX_BLANK_STEPS) return false;
    if (this.replies.some((r) => r.startsWith(a) && next(r, a.length))) return true;
    if (a === '') return pending === 0 || /[^\p{ASCII}]/u.test(this.text);
    return this.occurrences(a).some((p) => next(this.text, p + a.length));
  }

  /** May the answer stop here? Only after a fixed reply, or where some occurrence of the quote ends at a word boundary. */
  mayEnd(): boolean {
    const a = this.answer.trimEnd(); // already in match form
    if (a === '') return false;
    if (this.replies.includes(a)) return true;
    if (!isWordChar(a[a.length - 1])) return this.occurrences(a).length > 0;
    return this.occurrences(a).some((p) => !isWordChar(this.text[p + a.length]));
  }

  /** Records the answer after the chosen token. */
  commit(answer: string): void {
    const a = matchForm(answer.replace(/\uFFFD+$/, ''));
    if (a === '') this.blankSteps++;
    if (this.released || a === '') return;
    this.starts = this.occurrences(a);
    this.answer = a;
  }

  /** Stops constraining (no candidate continued a quote). */
  release(): void {
    this.released = true;
  }
}

/**
 * The token to emit under the constraint: the best-scored token the constraint allows (for a sampler, the allowed
 * ones with the rest masked out). The model's QUOTE_CANDIDATES best are looked at first, the next ones down to
 * QUOTE_SEARCH only when none of those is allowed. `textAfter(id)` is the visible answer if `id` came next;
 * `isEnd(id)` says whether `id` ends the answer. When no token at all is allowed, the constraint is released and the
 * unconstrained choice is returned.
 */
export function chooseQuoted(
  logits: Float32Array,
  quote: QuoteConstraint,
  pick: (logits: Float32Array) => number,
  textAfter: (id: number) => string,
  isEnd: (id: number) => boolean,
  greedy: boolean,
): number {
  if (!quote.active) return pick(logits);
  const allowed = (id: number) => (isEnd(id) ? quote.mayEnd() : quote.allows(textAfter(id)));
  // Ids come best first: greedy decoding needs only the first allowed one, a sampler all of them.
  const allowedOf = (ids: number[]): number[] => {
    if (!greedy) return ids.filter(allowed);
    const first = ids.find(allowed);
    return first === undefined ? [] : [first];
  };
  let ok = allowedOf(topIndices(logits, QUOTE_CANDIDATES));
  if (ok.length === 0) {
    const order = Array.from({ length: logits.length }, (_, i) => i).sort((x, y) => logits[y] - logits[x]);
    ok = allowedOf(order.slice(QUOTE_CANDIDATES, QUOTE_SEARCH));
  }
  if (ok.length === 0) {
    quote.release();
    return pick(logits);
  }
  if (greedy) return ok[0];
  const masked = new Float32Array(logits.length).fill(-Infinity);
  for (const id of ok) masked[id] = logits[id];
  return pick(masked);
}

/** Indices of the k largest values, largest first. */
export function topIndices(values: ArrayLike<number>, k: number): number[] {
  const top: number[] = [];
  for (let i = 0; i < values.length; i++) {
    if (top.length === k && values[i] <= values[top[k - 1]]) continue;
    let j = top.length < k ? top.length : k - 1;
    if (top.length < k) top.push(i);
    while (j > 0 && values[top[j - 1]] < values[i]) {
      top[j] = top[j - 1];
      j--;
    }
    top[j] = i;
  }
  return top;
}
