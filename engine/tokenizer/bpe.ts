// Rank-based byte-pair encoding of one normalized segment: tiktoken (Rust/WASM) for the normal case, a
// heap-based merge in JS for pathologically long pre-tokenizer pieces (tiktoken's merge loop is quadratic
// in the piece length: a 100 kB letter run takes seconds there, milliseconds here).
//
// Semantics are tiktoken's: split with the pattern, a piece that is itself a token becomes that token, otherwise
// repeatedly merge the adjacent pair whose concatenation has the lowest rank (leftmost on ties).

import { Tiktoken } from 'tiktoken';

/** A token the encoder may produce: its bytes and its rank (merge priority; lower merges first). */
export interface RankedToken {
  readonly bytes: Uint8Array;
  readonly rank: number;
}

/** Pieces at least this long (UTF-16 units) go through the JS merge; shorter ones stay in tiktoken. */
const LONG_PIECE = 400;

export class RankedBpe {
  private readonly tiktoken: Tiktoken;
  /** latin1 string of a token's bytes -> rank; built on the first long piece. */
  private byBytes: Map<string, number> | null = null;
  private readonly jsPattern: RegExp | null;
  /** Finds a run long enough that some piece might be long; null: never take the slow path. */
  private readonly longRun: RegExp | null;

  constructor(
    private readonly tokens: readonly RankedToken[],
    readonly pattern: string,
    source: string,
    /** A regex that matches wherever a piece of LONG_PIECE units could start; null = derive from the pattern classes. */
    longRun?: RegExp | null,
  ) {
    const lines: string[] = [];
    for (const t of tokens) lines.push(`${Buffer.from(t.bytes).toString('base64')} ${t.rank}`);
    try {
      this.tiktoken = new Tiktoken(lines.join('\n'), {}, pattern);
    } catch (e) {
      throw new Error(`${source}: tiktoken rejected the vocabulary or the pre-tokenizer pattern ${JSON.stringify(pattern)}: ${String(e)}`);
    }
    this.jsPattern = translatePattern(pattern);
    this.longRun =
      this.jsPattern === null
        ? null
        : (longRun ??
          new RegExp(
            // Exactly LONG_PIECE, not `{LONG_PIECE,}`: finding some run that long is enough, and an unbounded count
            // overflows V8's regexp stack on a multi-megabyte run (a 10 MB line threw RangeError).
            `[\\p{L}\\p{M}]{${LONG_PIECE}}|\\p{N}{${LONG_PIECE}}|[^\\p{White_Space}\\p{L}\\p{N}]{${LONG_PIECE}}|\\p{White_Space}{${LONG_PIECE}}`,
            'u',
          ));
  }

  /** Ranks of `text`'s tokens. */
  encode(text: string): Uint32Array {
    if (this.longRun === null || text.length < LONG_PIECE || !this.longRun.test(text)) {
      return this.tiktoken.encode_ordinary(text);
    }
    return this.encodeWithLongPieces(text);
  }

  count(text: string): number {
    return this.encode(text).length;
  }

  free(): void {
    this.tiktoken.free();
  }

  /**
   * Splits `text` with the JS translation of the pattern and sends everything between long pieces to tiktoken in
   * one call. Cutting there is safe for the split patterns in real files: a cut falls on a piece boundary, and the
   * piece before it matches the same way whether the long piece or the end of the string follows (the tests compare
   * long-run text against the reference tokenizer).
   */
  private encodeWithLongPieces(text: string): Uint32Array {
    const re = this.jsPattern as RegExp;
    re.lastIndex = 0;
    const out: number[] = [];
    let chunkStart = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      if (m[0].length === 0) {
        re.lastIndex++;
        continue;
      }
      if (m[0].length < LONG_PIECE) continue;
      if (m.index > chunkStart) for (const r of this.tiktoken.encode_ordinary(text.slice(chunkStart, m.index))) out.push(r);
      this.mergePiece(m[0], out);
      chunkStart = m.index + m[0].length;
    }
    if (chunkStart < text.length) for (const r of this.tiktoken.encode_ordinary(text.slice(chunkStart))) out.push(r);
    return Uint32Array.from(out);
  }

  private mergePiece(piece: string, out: number[]): void {
    const map = this.byBytes ?? (this.byBytes = this.buildByteMap());
    const bytes = Buffer.from(piece, 'utf8');
    const whole = map.get(bytes.toString('latin1'));
    if (whole !== undefined) {
      out.push(whole);
      return;
    }
    const n = bytes.length;
    const part: string[] = new Array<string>(n);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const version = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      part[i] = String.fromCharCode(bytes[i]);
      next[i] = i + 1;
      prev[i] = i - 1;
    }
    const heap = new PairHeap();
    const consider = (i: number): void => {
      const j = next[i];
      if (i < 0 || j >= n) return;
      const r = map.get(part[i] + part[j]);
      if (r !== undefined) heap.push(r, i, version[i], version[j]);
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    while (heap.size > 0) {
      const [, i, vi, vj] = heap.pop();
      const j = next[i];
      if (!alive[i] || j >= n || version[i] !== vi || version[j] !== vj) continue;
      part[i] += part[j];
      alive[j] = 0;
      next[i] = next[j];
      if (next[j] < n) prev[next[j]] = i;
      version[i]++;
      consider(prev[i]);
      consider(i);
    }
    for (let i = 0; i < n; i = next[i]) {
      const r = map.get(part[i]);
      if (r === undefined) throw new Error(`tokenizer: byte sequence ${JSON.stringify(part[i])} has no rank (vocabulary lacks a byte)`);
      out.push(r);
    }
  }

  private buildByteMap(): Map<string, number> {
    const map = new Map<string, number>();
    for (const t of this.tokens) map.set(Buffer.from(t.bytes).toString('latin1'), t.rank);
    return map;
  }
}

/** Min-heap of candidate merges keyed by (rank, left position). */
class PairHeap {
  private rank: number[] = [];
  private pos: number[] = [];
  private vl: number[] = [];
  private vr: number[] = [];
  get size(): number {
    return this.rank.length;
  }
  push(rank: number, pos: number, vl: number, vr: number): void {
    this.rank.push(rank);
    this.pos.push(pos);
    this.vl.push(vl);
    this.vr.push(vr);
    let i = this.rank.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): [number, number, number, number] {
    const top: [number, number, number, number] = [this.rank[0], this.pos[0], this.vl[0], this.vr[0]];
    const last = this.rank.length - 1;
    this.swap(0, last);
    this.rank.pop();
    this.pos.pop();
    this.vl.pop();
    this.vr.pop();
    let i = 0;
    const n = this.rank.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.less(l, m)) m = l;
      if (r < n && this.less(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
  private less(a: number, b: number): boolean {
    return this.rank[a] < this.rank[b] || (this.rank[a] === this.rank[b] && this.pos[a] < this.pos[b]);
  }
  private swap(a: number, b: number): void {
    for (const arr of [this.rank, this.pos, this.vl, this.vr]) {
      const t = arr[a];
      arr[a] = arr[b];
      arr[b] = t;
    }
  }
}

/**
 * JS RegExp equivalent of a Rust/Oniguruma split pattern, or null when the pattern uses something we do not
 * translate (then long pieces simply stay in tiktoken: slower, still exact).
 * Handled: \s \S -> Unicode White_Space (JS's \s also matches U+FEFF), \d -> \p{Nd}, (?i:...) over ASCII letters
 * outside classes, (?s:...) groups.
 */
export function translatePattern(pattern: string): RegExp | null {
  let out = '';
  let inClass = 0;
  const stack: Array<[boolean, boolean]> = [];
  let ci = false;
  let dotAll = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      const n = pattern[i + 1];
      i++;
      if (n === 's') out += '\\p{White_Space}';
      else if (n === 'S') {
        if (inClass) return null;
        out += '\\P{White_Space}';
      } else if (n === 'd') out += '\\p{Nd}';
      else if (
        n === 'w' ||
        n === 'W' ||
        n === 'D' ||
        n === 'b' ||
        n === 'B' ||
        n === 'A' ||
        n === 'z' ||
        n === 'Z' ||
        n === 'G' ||
        n === 'h' ||
        n === 'x'
      )
        return null;
      else if (n === 'p' || n === 'P') {
        const close = pattern.indexOf('}', i);
        if (pattern[i + 1] !== '{' || close < 0) return null;
        out += pattern.slice(i - 1, close + 1);
        i = close;
      } else out += '\\' + n;
      continue;
    }
    if (inClass) {
      if (c === '[') return null; // nested classes / set operations
      if (c === ']') inClass--;
      if (ci && /[a-zA-Z]/.test(c)) return null;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass++;
      out += c;
      if (pattern[i + 1] === '^') {
        out += '^';
        i++;
      }
      if (pattern[i + 1] === ']') {
        out += '\\]';
        i++;
      }
      continue;
    }
    if (c === '(') {
      stack.push([ci, dotAll]);
      if (pattern.startsWith('(?i:', i) || pattern.startsWith('(?s:', i)) {
        if (pattern[i + 2] === 'i') ci = true;
        else dotAll = true;
        out += '(?:';
        i += 3;
        continue;
      }
      if (pattern[i + 1] === '?' && !/[:=!<]/.test(pattern[i + 2] ?? '')) return null;
      out += c;
      continue;
    }
    if (c === ')') {
      [ci, dotAll] = stack.pop() ?? [false, false];
      out += c;
      continue;
    }
    if (c === '.') {
      out += dotAll ? '[\\s\\S]' : '[^\\n]';
      continue;
    }
    if (ci && /[a-zA-Z]/.test(c)) {
      out += `[${c.toLowerCase()}${c.toUpperCase()}]`;
      continue;
    }
    out += c;
  }
  try {
    return new RegExp(out, 'gu');
  } catch {
    return null;
  }
}
