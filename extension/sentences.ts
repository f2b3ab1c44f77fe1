// Answer tokens -> sentences -> the passages each sentence drew on, from the per-token attributions (source spans) the
// engine streams. Used by the panel (hover a sentence, see its passages) and the editor hover (the answer span a
// passage supported). Pure: no `vscode`.

import type { SentenceView, WireAnswerToken, WirePassage } from '../engine/protocol';

export interface Sentence {
  /** Answer text [start, end). */
  readonly start: number;
  readonly end: number;
  /** Answer tokens [firstToken, endToken). */
  readonly firstToken: number;
  readonly endToken: number;
}

const SENTENCE_END = /[.!?。！？](["')\]]*)\s*$/;

/**
 * Splits the answer after tokens that end a sentence (terminal punctuation, optionally closing quotes/brackets) or
 * contain a line break. Whitespace-only sentences are dropped; every non-blank token belongs to exactly one sentence.
 */
export function splitSentences(tokens: readonly { readonly text: string }[]): Sentence[] {
  const out: Sentence[] = [];
  let offset = 0;
  let start = 0;
  let first = 0;
  const close = (endToken: number): void => {
    const text = tokens
      .slice(first, endToken)
      .map((t) => t.text)
      .join('');
    if (text.trim() !== '') {
      // Leading/trailing whitespace stays outside the sentence's highlight.
      const lead = text.length - text.trimStart().length;
      const trail = text.length - text.trimEnd().length;
      out.push({ start: start + lead, end: offset - trail, firstToken: first, endToken });
    }
    start = offset;
    first = endToken;
  };
  tokens.forEach((t, i) => {
    offset += t.text.length;
    if (t.text.includes('\n') || SENTENCE_END.test(t.text)) close(i + 1);
  });
  if (first < tokens.length) close(tokens.length);
  return out;
}

function overlaps(span: { readonly start: number; readonly end: number }, p: WirePassage): boolean {
  // Passages cover whole lines [start, end); a zero-width span at the start still counts.
  return span.start < p.end && (span.end > p.start || span.start === p.start);
}

/** Attention each passage received from tokens [firstToken, endToken), as shares summing to 1, strongest first. */
export function passagesForTokens(
  tokens: readonly WireAnswerToken[],
  passages: readonly WirePassage[],
  firstToken: number,
  endToken: number,
): { index: number; weight: number }[] {
  const acc = new Float64Array(passages.length);
  for (let t = firstToken; t < endToken && t < tokens.length; t++) {
    for (const s of tokens[t].sources) {
      passages.forEach((p, i) => {
        if (p.doc === s.doc && overlaps(s, p)) acc[i] += s.weight;
      });
    }
  }
  const total = acc.reduce((a, b) => a + b, 0);
  if (total <= 0) return [];
  return [...acc]
    .map((w, index) => ({ index, weight: w / total }))
    .filter((e) => e.weight > 0)
    .sort((a, b) => b.weight - a.weight);
}

/** Sentences with the passages they drew on, for the webview. */
export function sentenceViews(tokens: readonly WireAnswerToken[], passages: readonly WirePassage[]): SentenceView[] {
  return splitSentences(tokens).map((s) => ({
    start: s.start,
    end: s.end,
    passages: passagesForTokens(tokens, passages, s.firstToken, s.endToken),
  }));
}

/** The answer sentence a passage supported most (by its strongest supporting token), as text; null if none. */
export function supportedSpan(answer: string, sentences: readonly Sentence[], passage: WirePassage): string | null {
  const token = passage.supports[0];
  if (token === undefined) return null;
  const s = sentences.find((x) => token >= x.firstToken && token < x.endToken);
  return s ? answer.slice(s.start, s.end) : null;
}
