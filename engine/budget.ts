// Token budget arithmetic for the meter and the CLI: per-document token counts against the context and the sliding
// window, and UTF-16 offset -> (line, character) mapping so token spans can become editor ranges.

import type { Encoding, Tokenizer } from './types';

export interface TextDocumentLike {
  readonly path: string;
  readonly text: string;
}

export interface DocumentTokens {
  readonly path: string;
  readonly tokens: number;
}

export interface DocumentCounts {
  readonly perFile: DocumentTokens[];
  readonly total: number;
}

/** Counts each document's tokens (plain encoding: no BOS/EOS, special-token text counted as ordinary text). */
export function countDocuments(tokenizer: Pick<Tokenizer, 'count'>, docs: readonly TextDocumentLike[]): DocumentCounts {
  let total = 0;
  const perFile = docs.map((d) => {
    const tokens = tokenizer.count(d.text);
    total += tokens;
    return { path: d.path, tokens };
  });
  return { perFile, total };
}

/** tokens / capacity, or null when there is no capacity (e.g. no sliding window). */
export function shareOf(tokens: number, capacity: number | null): number | null {
  return capacity === null || capacity <= 0 ? null : tokens / capacity;
}

/** A share as a percentage for tables: '12.3%', '<0.1%' for tiny non-zero shares, '—' for none. */
export function formatShare(share: number | null): string {
  if (share === null) return '—';
  if (share > 0 && share < 0.001) return '<0.1%';
  return `${(share * 100).toFixed(1)}%`;
}

// ---------------------------------------------------------------------------------------------------------------
// Offsets -> positions. Lines break at \n, \r\n and \r, as in VS Code; characters are UTF-16 code units.

export interface LineIndex {
  readonly text: string;
  /** Offset where each line starts; lineStarts[0] === 0. */
  readonly lineStarts: Int32Array;
}

export interface Position {
  readonly line: number;
  readonly character: number;
}

export function lineIndex(text: string): LineIndex {
  let n = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || (c === 13 && text.charCodeAt(i + 1) !== 10)) n++;
  }
  const lineStarts = new Int32Array(n);
  let k = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || (c === 13 && text.charCodeAt(i + 1) !== 10)) lineStarts[k++] = i + 1;
  }
  return { text, lineStarts };
}

/** Index of the line containing `offset` (binary search). */
export function lineOf(index: LineIndex, offset: number): number {
  const starts = index.lineStarts;
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= offset) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

function clampOffset(index: LineIndex, offset: number): number {
  return offset < 0 ? 0 : offset > index.text.length ? index.text.length : offset;
}

function characterAt(index: LineIndex, line: number, offset: number): number {
  // An offset between \r and \n belongs to the end of the line, as VS Code's positionAt has it.
  if (offset > index.lineStarts[line] && index.text.charCodeAt(offset - 1) === 13 && index.text.charCodeAt(offset) === 10) {
    return offset - 1 - index.lineStarts[line];
  }
  return offset - index.lineStarts[line];
}

/** Zero-based (line, character) of a UTF-16 offset; offsets outside the text are clamped. */
export function offsetToPosition(index: LineIndex, offset: number): Position {
  const o = clampOffset(index, offset);
  const line = lineOf(index, o);
  return { line, character: characterAt(index, line, o) };
}

/** Inverse of offsetToPosition for positions inside the text; characters past a line's end clamp to it. */
export function positionToOffset(index: LineIndex, pos: Position): number {
  const starts = index.lineStarts;
  if (pos.line < 0) return 0;
  if (pos.line >= starts.length) return index.text.length;
  const start = starts[pos.line];
  let end = pos.line + 1 < starts.length ? starts[pos.line + 1] : index.text.length;
  if (end > start && index.text.charCodeAt(end - 1) === 10) end--;
  if (end > start && index.text.charCodeAt(end - 1) === 13) end--;
  return start + Math.min(Math.max(pos.character, 0), end - start);
}

export interface TokenPositions {
  readonly startLine: Int32Array;
  readonly startCharacter: Int32Array;
  readonly endLine: Int32Array;
  readonly endCharacter: Int32Array;
}

/**
 * Positions of every token's [start, end) range. Linear when offsets ascend (the usual case); any order works.
 */
export function tokenPositions(index: LineIndex, enc: Pick<Encoding, 'starts' | 'ends'>): TokenPositions {
  const n = enc.starts.length;
  const out: TokenPositions = {
    startLine: new Int32Array(n),
    startCharacter: new Int32Array(n),
    endLine: new Int32Array(n),
    endCharacter: new Int32Array(n),
  };
  const starts = index.lineStarts;
  let line = 0;
  const locate = (offset: number): number => {
    const o = clampOffset(index, offset);
    if (o < starts[line]) line = lineOf(index, o);
    else while (line + 1 < starts.length && starts[line + 1] <= o) line++;
    return o;
  };
  for (let i = 0; i < n; i++) {
    const s = locate(enc.starts[i]);
    out.startLine[i] = line;
    out.startCharacter[i] = characterAt(index, line, s);
    const e = locate(enc.ends[i]);
    out.endLine[i] = line;
    out.endCharacter[i] = characterAt(index, line, e);
  }
  return out;
}
