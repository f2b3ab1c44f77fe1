// Writes tiny, deterministic random model folders (HF layout) under test/fixtures/generated/ for the unit tests:
// tiny-llama (untied), tiny-qwen2 (q/k/v bias, tied embeddings), tiny-mistral (sliding window). The tokenizer is a
// byte-level BPE trained here, deterministically, on fixed English text. Run: node out/tools/make-fixture.js

import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeSafetensors, expectedTensors, INDEX_FILE, SINGLE_FILE, type TensorToWrite } from '../engine/safetensors';
import { parseConfig } from '../engine/config';
import type { DType, ModelFamily } from '../engine/types';
import { mulberry32 } from '../engine/rng';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const FIXTURE_DIR = path.join(REPO_ROOT, 'test', 'fixtures', 'generated');

// ---------------------------------------------------------------------------------------------------------------
// Deterministic randomness

/** mulberry32 (engine/rng.ts): tiny seeded PRNG, uniform in [0, 1). */
export const makeRng = mulberry32;

// ---------------------------------------------------------------------------------------------------------------
// Tokenizer

export const SPECIAL_TOKENS = ['<|endoftext|>', '<|user|>', '<|assistant|>', '<|end|>'] as const;
export const NUM_MERGES = 380;

/** Llama 3's pre-tokenizer pattern as written in its tokenizer.json (Oniguruma syntax). */
export const LLAMA3_SPLIT_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** The same pattern in JavaScript syntax (Node 20 lacks inline `(?i:)` groups), used by the trainer only. */
const SPLIT_JS =
  /'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

export const CHAT_TEMPLATE =
  '{% for message in messages %}' +
  "{% if message['role'] == 'system' %}{{ message['content'] + '\\n' }}" +
  "{% elif message['role'] == 'user' %}{{ '<|user|>' + message['content'] + '<|end|>' }}" +
  "{% else %}{{ '<|assistant|>' + message['content'] + '<|end|>' }}{% endif %}" +
  '{% endfor %}' +
  "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";

/** Training text: plain English prose with some digits, punctuation, code and line breaks. */
export const TRAINING_TEXT = `
The lighthouse keeper kept a long notebook of every ship that passed the point. In the spring there were fishing
boats and ferries; in the summer, sailing yachts and the old steamer that carried mail to the islands. He wrote the
time, the weather, the direction of the wind and the name of the ship when he could read it. After forty years the
notebook had become a library of its own, and people from the town came to ask him questions about it.

"When did the storm of the long winter begin?" a student asked. The keeper turned the pages slowly. "It began on the
third of February, at four in the morning, with a wind from the north-east. The ferry did not sail for nine days."
The student wrote this down and asked another question, and then another. Each answer was somewhere in the notebook,
but finding it took time, because the keeper had to remember which year and which page.

A question about a long document is a question about memory. We read a page, we keep what matters, and we forget
the rest until something reminds us. When the question comes, we go back to the places we remember and read them
again. A good reader does not hold every word at once; a good reader knows where to look.

Attention works in a similar way. Each new word looks back at the words before it and decides which of them matter.
In a sliding window, a word can only see its recent neighbours and a few sink tokens at the start of the text. To
answer a question about a page that is far away, the model needs another way to bring that page back into view.
Blocks of the document are stored with their keys and values, and the question chooses which blocks to read again.

Here is a small program that counts words in a file:

function countWords(text) {
  const counts = new Map();
  for (const word of text.toLowerCase().split(/\\s+/)) {
    if (word.length === 0) continue;
    counts.set(word, (counts.get(word) ?? 0) + 1);
  }
  return counts;
}

The results for the notebook were 12,345 words in 2,048 lines, written over 40 years between 1961 and 2001. The most
common words were "the", "wind", "ship", "north" and "morning". The keeper said he had never counted them, and that
he would rather read the notebook than count it. He said the numbers were true but they were not the story.

In the autumn the student came back with a printed book. It held every line of the notebook, with an index of ships,
storms and names at the back. The keeper read it in the evening by the lamp, and he found that the index was faster
than his memory, but that his memory knew why each line had been written. They agreed that both were useful, and
that the best answer to a question would point to the page where the answer could be checked.

Questions and answers, pages and lines, ships and storms: the notebook was a long document, and the keeper was its
reader. It's what we'd all want from a reader: they've read everything, they'll tell you where it's written, and
they're honest when they don't know. I'm sure the keeper would have liked that. You're welcome to read it too.
`;

const BYTE_TO_UNICODE: readonly string[] = (() => {
  // GPT-2's byte-level mapping: printable bytes map to themselves, the rest to code points 256+.
  const keep = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(keep(b) ? b : next++));
  return out;
})();

export function byteLevelEncode(text: string): string {
  let s = '';
  for (const b of Buffer.from(text, 'utf8')) s += BYTE_TO_UNICODE[b];
  return s;
}

export interface TrainedBpe {
  /** Token string -> id: the 256 byte tokens (id = byte value) then one token per merge. */
  readonly vocab: Record<string, number>;
  readonly merges: string[];
}

/** A minimal BPE trainer: most frequent adjacent pair first, ties broken by the pair's string order. */
export function trainBpe(text: string, numMerges: number): TrainedBpe {
  const wordCounts = new Map<string, number>();
  for (const m of text.matchAll(SPLIT_JS)) {
    const w = byteLevelEncode(m[0]);
    wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
  }
  const words = [...wordCounts.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([w, count]) => ({ symbols: [...w], count }));
  const vocab: Record<string, number> = {};
  for (let b = 0; b < 256; b++) vocab[BYTE_TO_UNICODE[b]] = b;
  const merges: string[] = [];
  while (merges.length < numMerges) {
    const pairs = new Map<string, number>();
    for (const { symbols, count } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + count);
      }
    }
    let best = '';
    let bestCount = 1; // a pair seen once is not worth a merge
    for (const [key, count] of pairs) {
      if (count > bestCount || (count === bestCount && best !== '' && key < best)) {
        best = key;
        bestCount = count;
      }
    }
    if (best === '') break;
    const [a, b] = best.split(' ');
    const merged = a + b;
    merges.push(best);
    vocab[merged] = 256 + merges.length - 1;
    for (const w of words) {
      const s = w.symbols;
      for (let i = 0; i + 1 < s.length; i++) {
        if (s[i] === a && s[i + 1] === b) s.splice(i, 2, merged);
      }
    }
  }
  return { vocab, merges };
}

export interface FixtureTokenizer {
  readonly tokenizerJson: Record<string, unknown>;
  readonly tokenizerConfig: Record<string, unknown>;
  readonly vocabSize: number;
  readonly specialIds: Readonly<Record<(typeof SPECIAL_TOKENS)[number], number>>;
}

let cachedTokenizer: FixtureTokenizer | null = null;

/** The fixture tokenizer (tokenizer.json + tokenizer_config.json contents); same bytes every run. */
export function makeFixtureTokenizer(modelMaxLength = 2048): FixtureTokenizer {
  if (!cachedTokenizer) {
    const { vocab, merges } = trainBpe(TRAINING_TEXT, NUM_MERGES);
    const base = Object.keys(vocab).length;
    const specialIds = Object.fromEntries(SPECIAL_TOKENS.map((t, i) => [t, base + i])) as FixtureTokenizer['specialIds'];
    const addedTokens = SPECIAL_TOKENS.map((content, i) => ({
      id: base + i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    }));
    const tokenizerJson = {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: addedTokens,
      normalizer: null,
      pre_tokenizer: {
        type: 'Sequence',
        pretokenizers: [
          { type: 'Split', pattern: { Regex: LLAMA3_SPLIT_PATTERN }, behavior: 'Isolated', invert: false },
          { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
        ],
      },
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges,
      },
    };
    const tokenizerConfig = {
      added_tokens_decoder: Object.fromEntries(addedTokens.map(({ id, ...rest }) => [String(id), rest])),
      bos_token: null,
      eos_token: '<|end|>',
      pad_token: '<|endoftext|>',
      unk_token: null,
      chat_template: CHAT_TEMPLATE,
      clean_up_tokenization_spaces: false,
      model_max_length: 0,
      tokenizer_class: 'PreTrainedTokenizerFast',
    };
    cachedTokenizer = { tokenizerJson, tokenizerConfig, vocabSize: base + SPECIAL_TOKENS.length, specialIds };
  }
  return {
    ...cachedTokenizer,
    tokenizerConfig: { ...cachedTokenizer.tokenizerConfig, model_max_length: modelMaxLength },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Model folders

export interface TinyModelOptions {
  readonly family: ModelFamily;
  readonly hiddenSize?: number;
  readonly nLayers?: number;
  readonly nHeads?: number;
  readonly nKvHeads?: number;
  /** Written as config.head_dim when given. */
  readonly headDim?: number;
  readonly intermediateSize?: number;
  readonly maxPositionEmbeddings?: number;
  /** Default 32 for mistral, none otherwise. For qwen2 also writes use_sliding_window/max_window_layers. */
  readonly slidingWindow?: number | null;
  /** Default: true for qwen2, false otherwise. */
  readonly tieWordEmbeddings?: boolean;
  /** llama's attention_bias (qwen2 always has q/k/v bias). */
  readonly attentionBias?: boolean;
  readonly ropeTheta?: number;
  /** Raw config.json rope_scaling object. */
  readonly ropeScaling?: Record<string, unknown> | null;
  readonly dtype?: DType;
  /** > 1 writes model-0000i-of-0000n.safetensors plus model.safetensors.index.json. */
  readonly shards?: number;
  readonly seed?: number;
  /** Tensors to leave out (for tests of load-time errors). */
  readonly omitTensors?: readonly string[];
  /** Replace shapes of these tensors (for tests of load-time errors). */
  readonly overrideShapes?: Readonly<Record<string, readonly number[]>>;
}

export interface TinyModel {
  readonly dir: string;
  readonly config: Record<string, unknown>;
  readonly tokenizer: FixtureTokenizer;
}

function buildConfigJson(opts: TinyModelOptions, tok: FixtureTokenizer): Record<string, unknown> {
  const family = opts.family;
  const nHeads = opts.nHeads ?? 4;
  const cfg: Record<string, unknown> = {
    architectures: [{ llama: 'LlamaForCausalLM', qwen2: 'Qwen2ForCausalLM', mistral: 'MistralForCausalLM' }[family]],
    model_type: family,
    hidden_size: opts.hiddenSize ?? 64,
    num_hidden_layers: opts.nLayers ?? 2,
    num_attention_heads: nHeads,
    num_key_value_heads: opts.nKvHeads ?? 2,
    intermediate_size: opts.intermediateSize ?? 128,
    vocab_size: tok.vocabSize,
    max_position_embeddings: opts.maxPositionEmbeddings ?? 2048,
    rms_norm_eps: 1e-6,
    rope_theta: opts.ropeTheta ?? 10000,
    rope_scaling: opts.ropeScaling ?? null,
    hidden_act: 'silu',
    tie_word_embeddings: opts.tieWordEmbeddings ?? family === 'qwen2',
    bos_token_id: tok.specialIds['<|endoftext|>'],
    eos_token_id: tok.specialIds['<|endoftext|>'],
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[opts.dtype ?? 'F32'],
  };
  if (opts.headDim !== undefined) cfg['head_dim'] = opts.headDim;
  const window = opts.slidingWindow === undefined ? (family === 'mistral' ? 32 : null) : opts.slidingWindow;
  if (family === 'llama') cfg['attention_bias'] = opts.attentionBias ?? false;
  if (family === 'mistral') cfg['sliding_window'] = window;
  if (family === 'qwen2') {
    cfg['use_sliding_window'] = window !== null;
    cfg['sliding_window'] = window ?? 4096;
    cfg['max_window_layers'] = window !== null ? 0 : cfg['num_hidden_layers'];
  }
  return cfg;
}

/** Uniform values with the given standard deviation. */
function randomTensor(rng: () => number, count: number, std: number, mean = 0): Float32Array {
  const a = std * Math.sqrt(3);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = mean + (rng() * 2 - 1) * a;
  return out;
}

function removeOldModelFiles(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    if (/^model.*\.safetensors(\.index\.json)?$/.test(name)) fs.rmSync(path.join(dir, name));
  }
}

/**
 * Writes a tiny random model folder at `dir` (created if needed; old model*.safetensors files there are removed):
 * config.json, generation_config.json, model.safetensors (or shards + index), tokenizer.json, tokenizer_config.json.
 */
export function makeTinyModel(dir: string, opts: TinyModelOptions): TinyModel {
  const maxPos = opts.maxPositionEmbeddings ?? 2048;
  const tok = makeFixtureTokenizer(maxPos);
  const configJson = buildConfigJson(opts, tok);
  const cfg = parseConfig(configJson, path.join(dir, 'config.json'));
  const rng = makeRng(opts.seed ?? 1234);
  const dtype = opts.dtype ?? 'F32';
  const omit = new Set(opts.omitTensors ?? []);
  const tensors: TensorToWrite[] = [];
  for (const { name, shape: wantShape } of expectedTensors(cfg)) {
    const shape = opts.overrideShapes?.[name] ?? wantShape;
    const count = shape.reduce((a, b) => a * b, 1);
    let data: Float32Array;
    if (name.endsWith('norm.weight')) data = randomTensor(rng, count, 0.05, 1);
    else if (name.endsWith('.bias')) data = randomTensor(rng, count, 0.1);
    else if (shape.length === 2 && name !== 'model.embed_tokens.weight') data = randomTensor(rng, count, 1 / Math.sqrt(shape[1]));
    else data = randomTensor(rng, count, 1);
    if (!omit.has(name)) tensors.push({ name, dtype, shape, data });
  }

  fs.mkdirSync(dir, { recursive: true });
  removeOldModelFiles(dir);
  const writeJson = (name: string, v: unknown) => fs.writeFileSync(path.join(dir, name), JSON.stringify(v, null, 2) + '\n');
  writeJson('config.json', configJson);
  writeJson('generation_config.json', {
    bos_token_id: tok.specialIds['<|endoftext|>'],
    eos_token_id: [tok.specialIds['<|end|>'], tok.specialIds['<|endoftext|>']],
  });
  writeJson('tokenizer.json', tok.tokenizerJson);
  writeJson('tokenizer_config.json', tok.tokenizerConfig);

  const metadata = { format: 'pt' };
  const nShards = Math.max(1, opts.shards ?? 1);
  if (nShards === 1) {
    writeSafetensors(path.join(dir, SINGLE_FILE), tensors, metadata);
  } else {
    const weightMap: Record<string, string> = {};
    const per = Math.ceil(tensors.length / nShards);
    let totalSize = 0;
    for (let s = 0; s < nShards; s++) {
      const part = tensors.slice(s * per, (s + 1) * per);
      const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(nShards).padStart(5, '0')}.safetensors`;
      writeSafetensors(path.join(dir, file), part, metadata);
      for (const t of part) {
        weightMap[t.name] = file;
        totalSize += t.data.length * (dtype === 'F32' ? 4 : 2);
      }
    }
    writeJson(INDEX_FILE, { metadata: { total_size: totalSize }, weight_map: weightMap });
  }
  return { dir, config: configJson, tokenizer: tok };
}

/** The standard fixture set. */
export const FIXTURES: Readonly<Record<string, TinyModelOptions>> = {
  'tiny-llama': { family: 'llama', seed: 1 },
  'tiny-qwen2': { family: 'qwen2', seed: 2 },
  'tiny-mistral': { family: 'mistral', seed: 3, slidingWindow: 32 },
};

export function fixturePath(name: keyof typeof FIXTURES | string): string {
  return path.join(FIXTURE_DIR, name);
}

export function makeAllFixtures(root = FIXTURE_DIR): string[] {
  return Object.entries(FIXTURES).map(([name, opts]) => makeTinyModel(path.join(root, name), opts).dir);
}

if (require.main === module) {
  const t0 = Date.now();
  const dirs = makeAllFixtures();
  console.log(`make-fixture: wrote ${dirs.map((d) => path.relative(REPO_ROOT, d)).join(', ')} in ${Date.now() - t0} ms`);
}
