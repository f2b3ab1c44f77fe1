// Attribution: attention rows of answer tokens -> scores on source tokens -> ranked passages (file, range, score).
import type { TokenOrigin } from './prompt';
import type { WirePassage } from './protocol';
import { lineIndex, lineOf } from './budget';

/** Attention of one answer token over prompt positions that belong to documents (template and question excluded). */
export interface TokenAttribution {
  /** Prompt positions, descending by weight. */
  readonly positions: Int32Array;
  /** Share of the token's source attention, same order; sums to 1 over all source positions. */
  readonly weights: Float32Array;
}

export interface AttentionRows {
  /** Per layer (nHeads, nRows, nKeys). */
  readonly layers: readonly Float32Array[];
  readonly keyPositions: Int32Array;
}

/**
 * Mean over layers and heads of the attention that row `row` pays each key, restricted to keys that are document
 * tokens, renormalised over them. Keeps the `topK` strongest positions.
 * Head-averaging is the simplest aggregate; the raw per-head rows stay available to callers that want better.
 */
export function attributeRow(
  att: AttentionRows,
  nHeads: number,
  row: number,
  nRows: number,
  origin: TokenOrigin,
  topK = 32,
): TokenAttribution {
  const nKeys = att.keyPositions.length;
  const acc = new Float64Array(nKeys);
  for (const layer of att.layers) {
    for (let h = 0; h < nHeads; h++) {
      const base = (h * nRows + row) * nKeys;
      for (let k = 0; k < nKeys; k++) acc[k] += layer[base + k];
    }
  }
  const cand: number[] = [];
  let total = 0;
  for (let k = 0; k < nKeys; k++) {
    const p = att.keyPositions[k];
    if (p < origin.doc.length && origin.doc[p] >= 0 && acc[k] > 0) {
      cand.push(k);
      total += acc[k];
    }
  }
  cand.sort((a, b) => acc[b] - acc[a]);
  const top = cand.slice(0, topK);
  return {
    positions: Int32Array.from(top, (k) => att.keyPositions[k]),
    weights: Float32Array.from(top, (k) => (total > 0 ? acc[k] / total : 0)),
  };
}

/** A ranked source passage; the same shape crosses the wire to the extension and the webview. */
export type Passage = WirePassage;

/**
 * Groups token scores by source line, merges neighbouring scored lines into passages of at most `maxLines` lines,
 * and ranks them. Scores are normalised over all passages so they read as shares.
 */
export function buildPassages(
  perToken: readonly TokenAttribution[],
  origin: TokenOrigin,
  docs: readonly { readonly path: string; readonly text: string }[],
  opts: { readonly topK?: number; readonly maxLines?: number } = {},
): Passage[] {
  const topK = opts.topK ?? 8;
  const maxLines = opts.maxLines ?? 3;
  const indexes = docs.map((d) => lineIndex(d.text));
  // (doc, line) -> score and the answer tokens behind it.
  const lines = new Map<string, { doc: number; line: number; score: number; by: Map<number, number> }>();
  perToken.forEach((ta, t) => {
    for (let i = 0; i < ta.positions.length; i++) {
      const p = ta.positions[i];
      const doc = origin.doc[p];
      const line = lineOf(indexes[doc], origin.start[p]);
      const key = `${doc}:${line}`;
      let e = lines.get(key);
      if (!e) lines.set(key, (e = { doc, line, score: 0, by: new Map() }));
      e.score += ta.weights[i];
      e.by.set(t, (e.by.get(t) ?? 0) + ta.weights[i]);
    }
  });
  const sorted = [...lines.values()].sort((a, b) => a.doc - b.doc || a.line - b.line);
  const groups: (typeof sorted)[] = [];
  for (const e of sorted) {
    const g = groups[groups.length - 1];
    const prev = g?.[g.length - 1];
    if (g && prev && prev.doc === e.doc && e.line - prev.line === 1 && e.line - g[0].line < maxLines) g.push(e);
    else groups.push([e]);
  }
  const total = sorted.reduce((s, e) => s + e.score, 0) || 1;
  const passages = groups.map((g): Passage => {
    const doc = g[0].doc;
    const st = indexes[doc].lineStarts;
    const startLine = g[0].line;
    const endLine = g[g.length - 1].line;
    const by = new Map<number, number>();
    for (const e of g) for (const [t, w] of e.by) by.set(t, (by.get(t) ?? 0) + w);
    const text = docs[doc].text;
    let end = endLine + 1 < st.length ? st[endLine + 1] - 1 : text.length;
    if (end > st[startLine] && text.charCodeAt(end - 1) === 13) end--;
    return {
      doc,
      path: docs[doc].path,
      start: st[startLine],
      end,
      startLine,
      endLine,
      score: g.reduce((s, e) => s + e.score, 0) / total,
      supports: [...by.entries()].sort((a, b) => b[1] - a[1]).map(([t]) => t),
    };
  });
  return passages.sort((a, b) => b.score - a.score).slice(0, topK);
}
