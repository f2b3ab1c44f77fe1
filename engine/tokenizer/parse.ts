// Reads a Hugging Face tokenizer.json (+ tokenizer_config.json) into the small description our encoders run on.
// Everything we cannot reproduce exactly is refused here, with the file and the reason in the message.

export interface AddedTokenSpec {
  readonly id: number;
  readonly content: string;
  readonly special: boolean;
  readonly lstrip: boolean;
  readonly rstrip: boolean;
  readonly singleWord: boolean;
}

interface CommonSpec {
  /** Model vocabulary (token string as stored in tokenizer.json -> id), without the added tokens. */
  readonly vocab: Map<string, number>;
  /** Merges as [left, right] in priority order. */
  readonly merges: Array<[string, string]>;
  readonly added: AddedTokenSpec[];
  readonly unkId: number | null;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
}

/** GPT-2 style: ByteLevel pre-tokenizer/decoder, one split regex, optional NFC. */
export interface ByteLevelSpec extends CommonSpec {
  readonly kind: 'byte-level';
  /** Split regex in the Rust/Oniguruma dialect the file was written for. */
  readonly pattern: string;
  readonly addPrefixSpace: boolean;
  readonly nfc: boolean;
}

/** SentencePiece converted to BPE (Llama 2, Mistral v0.1): '▁' for spaces, <0xNN> byte fallback, no pre-tokenizer. */
export interface SentencePieceSpec extends CommonSpec {
  readonly kind: 'sentencepiece';
  /** Normalizer prepends '▁' to each segment. */
  readonly prependSpace: boolean;
  /** Decoder strips one leading space. */
  readonly stripLeadingSpace: boolean;
}

export type TokenizerSpec = ByteLevelSpec | SentencePieceSpec;

/** The GPT-2 pattern that ByteLevel uses when `use_regex` is true. */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

type Json = Record<string, unknown>;

export class TokenizerFormatError extends Error {
  override readonly name = 'TokenizerFormatError';
}

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  return isObj(v) && typeof v.type === 'string' ? v.type : (JSON.stringify(v)?.slice(0, 60) ?? String(v));
}

/** Content of a config token entry: 'x', or {content: 'x', ...} (AddedToken dict). */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isObj(v) && typeof v.content === 'string') return v.content;
  return null;
}

export function parseTokenizerJson(json: unknown, config: unknown, source: string): TokenizerSpec {
  const fail = (msg: string): never => {
    throw new TokenizerFormatError(`${source}: ${msg}`);
  };
  if (!isObj(json)) return fail('not a JSON object');
  const model = json.model;
  if (!isObj(model)) return fail("missing 'model'");
  const modelType = model.type ?? (model.merges !== undefined ? 'BPE' : undefined);
  if (modelType !== 'BPE') return fail(`unsupported model type '${String(modelType)}' (only BPE is supported)`);
  if (typeof model.dropout === 'number' && model.dropout > 0) return fail('BPE dropout is not supported');
  if (model.continuing_subword_prefix || model.end_of_word_suffix) {
    return fail('BPE continuing_subword_prefix / end_of_word_suffix are not supported');
  }
  if (!isObj(model.vocab)) return fail('model.vocab is missing or not an object');

  const vocab = new Map<string, number>();
  const seenIds = new Set<number>();
  for (const [tok, id] of Object.entries(model.vocab)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0)
      return fail(`vocab entry ${JSON.stringify(tok)} has invalid id ${String(id)}`);
    if (seenIds.has(id)) return fail(`vocab id ${id} is used by more than one token`);
    seenIds.add(id);
    vocab.set(tok, id);
  }

  const merges: Array<[string, string]> = [];
  if (!Array.isArray(model.merges)) return fail('model.merges is missing or not an array');
  for (const m of model.merges as unknown[]) {
    if (typeof m === 'string') {
      const sp = m.indexOf(' ', 1);
      if (sp < 0) return fail(`malformed merge ${JSON.stringify(m)}`);
      merges.push([m.slice(0, sp), m.slice(sp + 1)]);
    } else if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
      merges.push([m[0], m[1]]);
    } else {
      return fail(`malformed merge ${JSON.stringify(m)}`);
    }
  }

  const added: AddedTokenSpec[] = [];
  for (const a of Array.isArray(json.added_tokens) ? (json.added_tokens as unknown[]) : []) {
    if (!isObj(a) || typeof a.id !== 'number' || typeof a.content !== 'string') return fail(`malformed added token ${JSON.stringify(a)}`);
    if (a.content === '') continue;
    added.push({
      id: a.id,
      content: a.content,
      special: a.special === true,
      lstrip: a.lstrip === true,
      rstrip: a.rstrip === true,
      singleWord: a.single_word === true,
    });
  }
  // tokenizer_config.json may declare added tokens that tokenizer.json lacks (added_tokens_decoder).
  const cfg = isObj(config) ? config : {};
  if (isObj(cfg.added_tokens_decoder)) {
    const have = new Set(added.map((a) => a.id));
    for (const [idStr, a] of Object.entries(cfg.added_tokens_decoder)) {
      const id = Number(idStr);
      if (have.has(id) || !isObj(a) || typeof a.content !== 'string' || a.content === '') continue;
      added.push({
        id,
        content: a.content,
        special: a.special === true,
        lstrip: a.lstrip === true,
        rstrip: a.rstrip === true,
        singleWord: a.single_word === true,
      });
    }
  }

  const unkName = typeof model.unk_token === 'string' ? model.unk_token : null;
  const unkId = unkName === null ? null : (vocab.get(unkName) ?? added.find((a) => a.content === unkName)?.id ?? null);
  const common = { vocab, merges, added, unkId, bosToken: tokenContent(cfg.bos_token), eosToken: tokenContent(cfg.eos_token) };

  const pre = json.pre_tokenizer ?? null;
  const norm = json.normalizer ?? null;

  if (model.byte_fallback === true && !mentionsByteLevel(pre)) {
    return parseSentencePiece(json, common, fail);
  }

  // Byte-level: the pre-tokenizer must contain ByteLevel; exactly one step may split (Split or ByteLevel use_regex).
  const steps: unknown[] =
    isObj(pre) && pre.type === 'Sequence' && Array.isArray(pre.pretokenizers)
      ? (pre.pretokenizers as unknown[])
      : pre === null
        ? []
        : [pre];
  let pattern: string | null = null;
  let addPrefixSpace = false;
  let sawByteLevel = false;
  for (const step of steps) {
    if (!isObj(step)) return fail(`malformed pre_tokenizer step ${JSON.stringify(step)}`);
    if (step.type === 'ByteLevel') {
      sawByteLevel = true;
      addPrefixSpace = step.add_prefix_space === true;
      if (step.use_regex !== false) {
        if (pattern !== null) return fail('pre_tokenizer splits twice (Split + ByteLevel use_regex); not supported');
        pattern = GPT2_PATTERN;
      }
    } else if (step.type === 'Split') {
      if (pattern !== null) return fail('pre_tokenizer has more than one splitting step; not supported');
      if (step.behavior !== 'Isolated') return fail(`Split behavior '${String(step.behavior)}' is not supported (only Isolated)`);
      if (step.invert === true) return fail('Split with invert: true is not supported');
      const p = step.pattern;
      if (isObj(p) && typeof p.Regex === 'string') pattern = p.Regex;
      else if (isObj(p) && typeof p.String === 'string') pattern = escapeRegex(p.String);
      else return fail(`Split pattern ${JSON.stringify(p)} is not understood`);
    } else {
      return fail(`unsupported pre_tokenizer '${typeName(step)}'`);
    }
  }
  if (!sawByteLevel) {
    return fail(
      `pre_tokenizer ${pre === null ? 'is null' : `'${typeName(pre)}'`} has no ByteLevel step: not a byte-level BPE tokenizer and not a recognised SentencePiece conversion`,
    );
  }

  let nfc = false;
  const norms: unknown[] =
    isObj(norm) && norm.type === 'Sequence' && Array.isArray(norm.normalizers)
      ? (norm.normalizers as unknown[])
      : norm === null
        ? []
        : [norm];
  for (const n of norms) {
    if (isObj(n) && n.type === 'NFC') nfc = true;
    else return fail(`unsupported normalizer '${typeName(n)}' (only NFC is supported for byte-level BPE)`);
  }

  return {
    kind: 'byte-level',
    ...common,
    // Without a splitting step the whole segment is one piece.
    pattern: pattern ?? '(?s:.+)',
    addPrefixSpace,
    nfc,
  };
}

function mentionsByteLevel(pre: unknown): boolean {
  return JSON.stringify(pre ?? null).includes('"ByteLevel"');
}

function parseSentencePiece(
  json: Json,
  common: Omit<SentencePieceSpec, 'kind' | 'prependSpace' | 'stripLeadingSpace'>,
  fail: (msg: string) => never,
): SentencePieceSpec {
  // Recognise exactly the converter's output: normalizer [Prepend '▁'?, Replace ' ' -> '▁'], no pre-tokenizer.
  if (json.pre_tokenizer !== null && json.pre_tokenizer !== undefined) {
    return fail(
      `byte_fallback BPE with pre_tokenizer '${typeName(json.pre_tokenizer)}' is not supported (only the Llama 2 style with normalizer Prepend/Replace '▁')`,
    );
  }
  const norm = json.normalizer;
  const steps: unknown[] =
    isObj(norm) && norm.type === 'Sequence' && Array.isArray(norm.normalizers) ? (norm.normalizers as unknown[]) : norm ? [norm] : [];
  let prependSpace = false;
  let replaced = false;
  for (const s of steps) {
    if (isObj(s) && s.type === 'Prepend' && s.prepend === '▁') prependSpace = true;
    else if (isObj(s) && s.type === 'Replace' && isObj(s.pattern) && s.pattern.String === ' ' && s.content === '▁') replaced = true;
    else return fail(`byte_fallback BPE with normalizer step '${typeName(s)}' is not supported`);
  }
  if (!replaced) return fail("byte_fallback BPE without the Replace ' ' -> '▁' normalizer is not supported");
  for (let b = 0; b < 256; b++) {
    const name = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
    if (!common.vocab.has(name)) return fail(`byte_fallback is set but the vocabulary lacks ${name}`);
  }
  const dec = JSON.stringify(json.decoder ?? null);
  return { kind: 'sentencepiece', ...common, prependSpace, stripLeadingSpace: dec.includes('"Strip"') };
}

function escapeRegex(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|-]/g, '\\$&');
}
