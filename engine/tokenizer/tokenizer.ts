// The Tokenizer contract (engine/types.ts) over a RankedBpe: added-token splitting, normalization with an offset
// map back to the caller's string, rank -> id translation, and byte-exact decoding.

import type { Encoding, StreamDecoder, Tokenizer } from '../types';
import type { AddedTokenSpec } from './parse';
import type { RankedBpe } from './bpe';

/** A segment after normalization, with where each of its UTF-16 units came from in the caller's text. */
export interface NormalizedSegment {
  readonly text: string;
  /** null: identity (unit i came from base + i). Otherwise origStart[i]/origEnd[i] are absolute offsets. */
  readonly origStart: Int32Array | null;
  readonly origEnd: Int32Array | null;
}

/** What differs between tokenizer families; the rest (splitting, offsets, decoding) is shared. */
export interface Codec {
  /** Normalized text of a segment (what the BPE sees); fast path for encode/count. */
  normalize(segment: string): string;
  /** Same text plus the map back to the caller's offsets, `base` being the segment's start in the caller's text. */
  normalizeWithMap(segment: string, base: number): NormalizedSegment;
  readonly bpe: RankedBpe;
  /**
   * Turns BPE ranks into token ids, pushing each id and the number of normalized-text bytes it covers; id -1 marks
   * bytes that produce no token. null: ranks are ids and cover the bytes of that id.
   */
  readonly translate: ((ranks: Uint32Array, ids: number[], byteLens: number[]) => void) | null;
  /** Post-processing of decoded text (e.g. SentencePiece strips the leading space), applied by decode(). */
  readonly finishDecode?: (text: string) => string;
}

export interface TokenTables {
  /** id -> token string as in tokenizer.json (undefined for holes). */
  readonly idToToken: ReadonlyArray<string | undefined>;
  readonly tokenToId: ReadonlyMap<string, number>;
  /** id -> decoded bytes, packed: bytes of id are data[offsets[id] .. offsets[id + 1]). */
  readonly bytesData: Uint8Array;
  readonly bytesOffsets: Int32Array;
  /** id -> whether it exists. */
  readonly present: Uint8Array;
}

export class BpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly specialTokens: ReadonlyMap<string, number>;
  private readonly splitAll: AddedMatcher | null;
  private readonly splitNonSpecial: AddedMatcher | null;
  // ignoreBOM: a U+FEFF in the text is content, not a byte-order mark to strip.
  private readonly decoder = new TextDecoder('utf-8', { ignoreBOM: true });

  constructor(
    private readonly codec: Codec,
    private readonly tables: TokenTables,
    added: readonly AddedTokenSpec[],
    readonly bosTokenId: number | null,
    readonly eosTokenId: number | null,
  ) {
    this.vocabSize = tables.present.length;
    const special = new Map<string, number>();
    for (const a of added) special.set(a.content, a.id);
    this.specialTokens = special;
    this.splitAll = buildAddedMatcher(added);
    this.splitNonSpecial = buildAddedMatcher(added.filter((a) => !a.special));
  }

  encode(text: string, opts?: { allowSpecial?: boolean }): number[] {
    const ids: number[] = [];
    this.forSegments(
      text,
      opts?.allowSpecial === true,
      (start, end) => {
        if (end > start) this.pushIds(this.codec.bpe.encode(this.codec.normalize(text.slice(start, end))), ids);
      },
      (id) => ids.push(id),
    );
    return ids;
  }

  count(text: string): number {
    let n = 0;
    this.forSegments(
      text,
      false,
      (start, end) => {
        if (end <= start) return;
        const ranks = this.codec.bpe.encode(this.codec.normalize(text.slice(start, end)));
        if (this.codec.translate === null) n += ranks.length;
        else {
          const ids: number[] = [];
          this.codec.translate(ranks, ids, []);
          for (const id of ids) if (id >= 0) n++;
        }
      },
      () => n++,
    );
    return n;
  }

  /**
   * Offsets are UTF-16 [start, end) ranges of the caller's string. A token that covers only some bytes of a
   * character (byte-level BPE splits emoji and CJK this way) gets that whole character's range, so neighbouring
   * tokens may share a range; starts and ends are both non-decreasing. A whitespace-stripping added token
   * (lstrip/rstrip) covers the whitespace it absorbed. A character that normalization composed from several
   * (NFC) maps to the whole cluster it came from.
   */
  encodeWithOffsets(text: string, opts?: { allowSpecial?: boolean }): Encoding {
    const ids: number[] = [];
    const starts: number[] = [];
    const ends: number[] = [];
    this.forSegments(
      text,
      opts?.allowSpecial === true,
      (start, end) => {
        if (end <= start) return;
        const seg = this.codec.normalizeWithMap(text.slice(start, end), start);
        const ranks = this.codec.bpe.encode(seg.text);
        const segIds: number[] = [];
        const lens: number[] = [];
        if (this.codec.translate === null) {
          const { bytesOffsets } = this.tables;
          for (const r of ranks) {
            segIds.push(r);
            lens.push(bytesOffsets[r + 1] - bytesOffsets[r]);
          }
        } else this.codec.translate(ranks, segIds, lens);
        mapOffsets(seg, start, segIds, lens, ids, starts, ends);
      },
      (id, start, end) => {
        ids.push(id);
        starts.push(start);
        ends.push(end);
      },
    );
    return { ids, starts: Int32Array.from(starts), ends: Int32Array.from(ends) };
  }

  decode(ids: readonly number[]): string {
    const text = this.decoder.decode(this.bytesOf(ids));
    return this.codec.finishDecode ? this.codec.finishDecode(text) : text;
  }

  createStreamDecoder(): StreamDecoder {
    const dec = new TextDecoder('utf-8', { ignoreBOM: true });
    let first = true;
    const finish = this.codec.finishDecode;
    const emit = (s: string): string => {
      if (!first || s === '' || !finish) return s;
      first = false;
      return finish(s);
    };
    return {
      push: (id: number) => emit(dec.decode(this.bytesOf([id]), { stream: true })),
      flush: () => emit(dec.decode()),
    };
  }

  idToToken(id: number): string | undefined {
    return this.tables.idToToken[id];
  }

  tokenToId(token: string): number | undefined {
    return this.tables.tokenToId.get(token);
  }

  private bytesOf(ids: readonly number[]): Uint8Array {
    const { bytesData, bytesOffsets, present } = this.tables;
    let n = 0;
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= present.length || !present[id]) {
        throw new RangeError(`token id ${id} is not in the vocabulary (size ${present.length})`);
      }
      n += bytesOffsets[id + 1] - bytesOffsets[id];
    }
    const out = new Uint8Array(n);
    let p = 0;
    for (const id of ids) {
      out.set(bytesData.subarray(bytesOffsets[id], bytesOffsets[id + 1]), p);
      p += bytesOffsets[id + 1] - bytesOffsets[id];
    }
    return out;
  }

  private pushIds(ranks: Uint32Array, ids: number[]): void {
    if (this.codec.translate === null) for (const r of ranks) ids.push(r);
    else {
      const out: number[] = [];
      this.codec.translate(ranks, out, []);
      for (const id of out) if (id >= 0) ids.push(id);
    }
  }

  /** Calls `plain` for each stretch of ordinary text and `addedTok` for each added token, in order. */
  private forSegments(
    text: string,
    allowSpecial: boolean,
    plain: (start: number, end: number) => void,
    addedTok: (id: number, start: number, end: number) => void,
  ): void {
    const matcher = allowSpecial ? this.splitAll : this.splitNonSpecial;
    if (matcher === null) {
      plain(0, text.length);
      return;
    }
    const re = matcher.re;
    re.lastIndex = 0;
    let last = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      let g = 1;
      while (m[g] === undefined) g++;
      const id = matcher.ids[g - 1];
      plain(last, m.index);
      addedTok(id, m.index, m.index + m[0].length);
      last = m.index + m[0].length;
    }
    plain(last, text.length);
  }
}

/** An alternation over added tokens; group k + 1 matched means token ids[k]. */
interface AddedMatcher {
  readonly re: RegExp;
  readonly ids: readonly number[];
}

/**
 * One alternation over the added tokens, longest first so that the leftmost match is also the longest (the
 * reference matches leftmost-longest). lstrip/rstrip absorb neighbouring whitespace; single_word requires no word
 * character on either side.
 */
function buildAddedMatcher(added: readonly AddedTokenSpec[]): AddedMatcher | null {
  if (added.length === 0) return null;
  const sorted = [...added].sort((a, b) => b.content.length - a.content.length);
  const alts = sorted.map((a) => {
    let p = `(${a.content.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&')})`;
    if (a.singleWord) p = `(?<![\\p{L}\\p{N}_])${p}(?![\\p{L}\\p{N}_])`;
    if (a.lstrip) p = `\\p{White_Space}*${p}`;
    if (a.rstrip) p = `${p}\\p{White_Space}*`;
    return p;
  });
  return { re: new RegExp(alts.join('|'), 'gu'), ids: sorted.map((a) => a.id) };
}

/** Walks tokens over the UTF-8 bytes of `seg.text` and records each token's character range in the caller's text. */
function mapOffsets(
  seg: NormalizedSegment,
  base: number,
  segIds: readonly number[],
  byteLens: readonly number[],
  ids: number[],
  starts: number[],
  ends: number[],
): void {
  const t = seg.text;
  let ci = 0; // UTF-16 index of the current character
  let cStart = 0; // its first byte
  let cBytes = charBytes(t, 0);
  let cUnits = cBytes === 4 ? 2 : 1;
  let pos = 0;
  const nextChar = (): void => {
    cStart += cBytes;
    ci += cUnits;
    cBytes = ci < t.length ? charBytes(t, ci) : 1;
    cUnits = cBytes === 4 ? 2 : 1;
  };
  for (let k = 0; k < segIds.length; k++) {
    const bStart = pos;
    const bEnd = pos + byteLens[k];
    while (cStart + cBytes <= bStart) nextChar();
    const u0 = ci;
    while (cStart + cBytes < bEnd) nextChar();
    const u1 = ci + cUnits;
    pos = bEnd;
    if (segIds[k] < 0) continue; // bytes the vocabulary cannot represent: covered by nothing, like the reference
    ids.push(segIds[k]);
    if (seg.origStart === null || seg.origEnd === null) {
      starts.push(base + u0);
      ends.push(base + u1);
    } else {
      starts.push(seg.origStart[u0]);
      ends.push(seg.origEnd[u1 - 1]);
    }
  }
}

/** UTF-8 length of the character at UTF-16 index i (a lone surrogate counts as U+FFFD: 3 bytes). */
function charBytes(t: string, i: number): number {
  const c = t.charCodeAt(i);
  if (c < 0x80) return 1;
  if (c < 0x800) return 2;
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < t.length) {
    const d = t.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return 4;
  }
  return 3;
}
