// Entry point: a Tokenizer from a Hugging Face model folder (tokenizer.json + tokenizer_config.json) or from
// already-parsed JSON. Byte-level BPE runs on tiktoken; SentencePiece-converted BPE (Llama 2) is refused for now.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Tokenizer } from '../types';
import { byteLevelDecode } from './byteLevel';
import { byteLevelCodec } from './byteLevelCodec';
import { parseTokenizerJson, type TokenizerSpec } from './parse';
import { BpeTokenizer, type TokenTables } from './tokenizer';

export { TokenizerFormatError } from './parse';

/** Loads `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json` (bos/eos, extra added tokens). */
export function loadTokenizer(dir: string): Tokenizer {
  const file = join(dir, 'tokenizer.json');
  const source = `tokenizer.json in ${dir}`;
  if (!existsSync(file)) throw new Error(`${source}: file not found`);
  const json = readJson(file, source);
  const cfgFile = join(dir, 'tokenizer_config.json');
  const config = existsSync(cfgFile) ? readJson(cfgFile, `tokenizer_config.json in ${dir}`) : undefined;
  return tokenizerFromJson(json, config, source);
}

export function tokenizerFromJson(tokenizerJson: unknown, tokenizerConfig?: unknown, sourceName = 'tokenizer.json'): Tokenizer {
  const spec = parseTokenizerJson(tokenizerJson, tokenizerConfig ?? null, sourceName);
  const tables = buildTables(spec);
  if (spec.kind !== 'byte-level') {
    throw new Error(
      `${sourceName}: SentencePiece-style BPE (byte_fallback with '▁' spaces, e.g. Llama 2) is not supported yet; ` +
        'use a byte-level BPE tokenizer (Llama 3, Qwen2/3, SmolLM, GPT-2)',
    );
  }
  const codec = byteLevelCodec(spec, tables, sourceName);
  const idOf = (tok: string | null): number | null => (tok === null ? null : (tables.tokenToId.get(tok) ?? null));
  return new BpeTokenizer(codec, tables, spec.added, idOf(spec.bosToken), idOf(spec.eosToken));
}

function readJson(file: string, source: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${source}: cannot read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new Error(`${source}: invalid JSON: ${(e as Error).message}`);
  }
}

/** id <-> string tables and each id's decoded bytes (added tokens decode to their content). */
function buildTables(spec: TokenizerSpec): TokenTables {
  let size = 0;
  for (const id of spec.vocab.values()) if (id >= size) size = id + 1;
  for (const a of spec.added) if (a.id >= size) size = a.id + 1;
  const idToToken: Array<string | undefined> = new Array<string | undefined>(size);
  const bytes: Array<Uint8Array | undefined> = new Array<Uint8Array | undefined>(size);
  const tokenToId = spec.vocab; // parse made a fresh map: extend it with the added tokens
  const enc = new TextEncoder();
  for (const [tok, id] of spec.vocab) {
    idToToken[id] = tok;
    bytes[id] = decodeVocabToken(spec, tok) ?? enc.encode(tok);
  }
  for (const a of spec.added) {
    idToToken[a.id] = a.content;
    bytes[a.id] = enc.encode(a.content);
    tokenToId.set(a.content, a.id);
  }
  const present = new Uint8Array(size);
  const offsets = new Int32Array(size + 1);
  let total = 0;
  for (let i = 0; i < size; i++) {
    offsets[i] = total;
    const b = bytes[i];
    if (b !== undefined) {
      present[i] = 1;
      total += b.length;
    }
  }
  offsets[size] = total;
  const data = new Uint8Array(total);
  for (let i = 0; i < size; i++) {
    const b = bytes[i];
    if (b !== undefined) data.set(b, offsets[i]);
  }
  return { idToToken, tokenToId, bytesData: data, bytesOffsets: offsets, present };
}

function decodeVocabToken(spec: TokenizerSpec, tok: string): Uint8Array | null {
  if (spec.kind === 'byte-level') return byteLevelDecode(tok);
  const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(tok);
  if (m) return Uint8Array.of(parseInt(m[1], 16));
  return new TextEncoder().encode(tok.replace(/▁/g, ' '));
}
