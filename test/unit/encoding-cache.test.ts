// Document encodings cached by content: identical to tokenizing, reused from disk by a new cache, bad files ignored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EncodingCache } from '../../engine/encoding-cache';
import { Engine } from '../../engine/engine';
import { loadTokenizer } from '../../engine/tokenizer';
import type { Tokenizer } from '../../engine/types';
import { fixturePath } from '../../tools/make-fixture';

const text = 'The pass key is 71432.\r\nCafé ☕ — 你好\n'.repeat(20);

function counting(tok: Tokenizer): { tok: Tokenizer; calls: () => number } {
  let n = 0;
  const wrapped = Object.create(tok) as Tokenizer;
  wrapped.encodeWithOffsets = (t, o) => {
    n++;
    return tok.encodeWithOffsets(t, o);
  };
  return { tok: wrapped, calls: () => n };
}

test('a cached encoding equals tokenizing, and a new cache on the same folder reads it instead of tokenizing', () => {
  const tok = loadTokenizer(fixturePath('tiny-llama'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-enc-'));
  const want = tok.encodeWithOffsets(text, { allowSpecial: false });
  const a = counting(tok);
  const first = new EncodingCache(a.tok, dir).encode(text);
  assert.deepEqual(first.ids, want.ids);
  assert.deepEqual(Array.from(first.starts), Array.from(want.starts));
  assert.equal(a.calls(), 1);
  const b = counting(tok);
  const second = new EncodingCache(b.tok, dir).encode(text);
  assert.equal(b.calls(), 0, 'read from disk');
  assert.deepEqual(second.ids, want.ids);
  assert.deepEqual(Array.from(second.ends), Array.from(want.ends));
});

test('a corrupt or truncated file is ignored (tokenized again, then rewritten); clear() forgets everything', () => {
  const tok = loadTokenizer(fixturePath('tiny-llama'));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-enc-'));
  new EncodingCache(tok, dir).encode(text);
  const [file] = fs.readdirSync(dir).filter((f) => f.endsWith('.enc'));
  const buf = fs.readFileSync(path.join(dir, file));
  buf[20] ^= 0xff;
  fs.writeFileSync(path.join(dir, file), buf);
  const c = counting(tok);
  const cache = new EncodingCache(c.tok, dir);
  assert.deepEqual(cache.encode(text).ids, tok.encode(text));
  assert.equal(c.calls(), 1, 'a flipped byte fails the checksum');
  fs.writeFileSync(path.join(dir, file), fs.readFileSync(path.join(dir, file)).subarray(0, 30));
  const d = counting(tok);
  new EncodingCache(d.tok, dir).encode(text);
  assert.equal(d.calls(), 1, 'a truncated file is not read');
  cache.clear();
  assert.equal(fs.existsSync(dir), false);
});

test('an unwritable folder only loses the disk half', () => {
  const tok = loadTokenizer(fixturePath('tiny-llama'));
  const blocker = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'attend-enc-')), 'file');
  fs.writeFileSync(blocker, 'not a folder');
  const cache = new EncodingCache(tok, path.join(blocker, 'enc'));
  assert.deepEqual(cache.encode(text).ids, tok.encode(text));
  assert.deepEqual(cache.encode(text).ids, tok.encode(text));
});

test('the engine counts a document it has read from the remembered encoding, in this process or the next; other text: null', async () => {
  const modelDir = fixturePath('tiny-llama');
  const tok = loadTokenizer(modelDir);
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-enc-engine-'));
  const doc = { path: 'notes.txt', text };
  const first = await Engine.load({ modelDir, cacheDir, window: 64, memory: null });
  try {
    assert.equal(first.rememberedTokenCount(text), null, 'not read yet');
    const r = await first.ask({ docs: [doc], question: 'What is the pass key?', maxNewTokens: 1 });
    const span = r.prompt.docs[0];
    assert.equal(first.rememberedTokenCount(text), span.tokenEnd - span.tokenStart);
    assert.equal(first.rememberedTokenCount(text), tok.count(text));
    assert.equal(first.rememberedTokenCount(text + ' '), null, 'another text');
  } finally {
    await first.dispose();
  }
  const next = await Engine.load({ modelDir, cacheDir, window: 64, memory: null });
  try {
    assert.equal(next.rememberedTokenCount(text), tok.count(text), 'from disk');
  } finally {
    await next.dispose();
  }
});
