// Byte-level BPE (GPT-2, Llama 3, Qwen2/3, SmolLM): vocabulary strings are bytes in GPT-2's printable alphabet,
// ranks are ids, and tiktoken does the splitting and merging.

import { RankedBpe, type RankedToken } from './bpe';
import { byteLevelDecode } from './byteLevel';
import type { ByteLevelSpec } from './parse';
import type { Codec, NormalizedSegment, TokenTables } from './tokenizer';

/**
 * Builds the codec. tiktoken merges the adjacent pair whose concatenation has the lowest rank; with rank = id this
 * is the tokenizer.json BPE exactly when merges are listed in id order of the token they produce, which we check.
 */
export function byteLevelCodec(spec: ByteLevelSpec, tables: TokenTables, source: string): Codec {
  checkMergeOrder(spec, source);
  const tokens: RankedToken[] = [];
  const haveByte = new Uint8Array(256);
  for (const [tok, id] of spec.vocab) {
    const bytes = byteLevelDecode(tok);
    if (bytes === null) continue; // not in the byte alphabet: never produced by BPE, decodes as its literal text
    if (bytes.length === 1) haveByte[bytes[0]] = 1;
    tokens.push({ bytes, rank: id });
  }
  // tiktoken needs every single byte; a trained vocabulary may lack some. Give those ranks past every id and drop
  // them afterwards (or map them to unk), as the reference does for characters missing from the vocabulary.
  const firstFake = tables.present.length;
  let fakes = 0;
  for (let b = 0; b < 256; b++) if (!haveByte[b]) tokens.push({ bytes: Uint8Array.of(b), rank: firstFake + fakes++ });

  const pattern = totalPattern(spec.pattern);
  const bpe = new RankedBpe(tokens, pattern, source);
  const unk = spec.unkId;
  const { bytesOffsets } = tables;
  const translate =
    fakes === 0
      ? null
      : (ranks: Uint32Array, ids: number[], lens: number[]): void => {
          for (const r of ranks) {
            if (r < firstFake) {
              ids.push(r);
              lens.push(bytesOffsets[r + 1] - bytesOffsets[r]);
            } else {
              ids.push(unk ?? -1);
              lens.push(1);
            }
          }
        };

  const prefix = spec.addPrefixSpace;
  const nfc = spec.nfc;
  return {
    bpe,
    translate,
    normalize(segment: string): string {
      const s = nfc ? segment.normalize('NFC') : segment;
      return prefix && !s.startsWith(' ') ? ' ' + s : s;
    },
    normalizeWithMap(segment: string, base: number): NormalizedSegment {
      let seg: NormalizedSegment = { text: segment, origStart: null, origEnd: null };
      if (nfc) {
        const n = segment.normalize('NFC');
        if (n !== segment) seg = nfcWithMap(segment, n, base);
      }
      if (prefix && !seg.text.startsWith(' ')) seg = withPrefixSpace(seg, base);
      return seg;
    },
  };
}

/**
 * tiktoken keeps only what the pattern matches; tokenizer.json's Split(Isolated) also keeps the gaps as pieces.
 * The patterns in real files match every character, so the extra alternative never fires there.
 */
function totalPattern(p: string): string {
  return `(?:${p})|(?s:(?:(?!(?:${p})).)+)`;
}

function checkMergeOrder(spec: ByteLevelSpec, source: string): void {
  let prevId = -1;
  for (let i = 0; i < spec.merges.length; i++) {
    const [a, b] = spec.merges[i];
    const id = spec.vocab.get(a + b);
    if (id === undefined) {
      throw new Error(`${source}: merge #${i} ${JSON.stringify(`${a} ${b}`)} produces a token that is not in the vocabulary`);
    }
    if (id < prevId) {
      throw new Error(
        `${source}: merges are not in id order (merge #${i} ${JSON.stringify(`${a} ${b}`)} makes id ${id} after a merge that made id ${prevId}); ` +
          'this tokenizer cannot run on tiktoken, whose merge priority is the token id',
      );
    }
    prevId = id;
  }
}

/** NFC changed the segment: map each normalized unit to the character cluster it came from. */
function nfcWithMap(segment: string, normalized: string, base: number): NormalizedSegment {
  // A cluster is a character plus the marks (and Hangul medial/final jamo) that NFC may compose into it.
  const clusterRe = /[^\p{M}\u1160-\u11FF][\p{M}\u1160-\u11FF]*|[\p{M}\u1160-\u11FF]+/gsu;
  const starts: number[] = [];
  const ends: number[] = [];
  let text = '';
  for (let m = clusterRe.exec(segment); m !== null; m = clusterRe.exec(segment)) {
    const c = m[0];
    const o = base + m.index;
    const n = c.normalize('NFC');
    text += n;
    if (n === c) {
      for (let i = 0; i < c.length; i++) {
        const pair = i + 1 < c.length && isHigh(c.charCodeAt(i)) && isLow(c.charCodeAt(i + 1));
        starts.push(o + i);
        ends.push(o + i + (pair ? 2 : 1));
        if (pair) {
          starts.push(o + i);
          ends.push(o + i + 2);
          i++;
        }
      }
    } else {
      for (let i = 0; i < n.length; i++) {
        starts.push(o);
        ends.push(o + c.length);
      }
    }
  }
  if (text !== normalized) {
    // Composition crossed our cluster boundaries: fall back to the whole segment (ids stay exact).
    const len = normalized.length;
    return { text: normalized, origStart: new Int32Array(len).fill(base), origEnd: new Int32Array(len).fill(base + segment.length) };
  }
  return { text, origStart: Int32Array.from(starts), origEnd: Int32Array.from(ends) };
}

function withPrefixSpace(seg: NormalizedSegment, base: number): NormalizedSegment {
  const len = seg.text.length + 1;
  const origStart = new Int32Array(len);
  const origEnd = new Int32Array(len);
  origStart[0] = base;
  origEnd[0] = base; // the inserted space covers nothing of the caller's text
  for (let i = 1; i < len; i++) {
    origStart[i] = seg.origStart ? seg.origStart[i - 1] : base + i - 1;
    origEnd[i] = seg.origEnd ? seg.origEnd[i - 1] : base + i;
  }
  return { text: ' ' + seg.text, origStart, origEnd };
}

function isHigh(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}
function isLow(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}
