import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { loadConfig } from '../../engine/config';
import { openCheckpoint, validateCheckpoint } from '../../engine/safetensors';
import { CHAT_TEMPLATE, FIXTURES, SPECIAL_TOKENS, TRAINING_TEXT, fixturePath, makeAllFixtures, trainBpe } from '../../tools/make-fixture';

function readJson(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

test('the fixture generator is deterministic, byte for byte', () => {
  const a = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-fx-a-'));
  const b = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-fx-b-'));
  try {
    makeAllFixtures(a);
    makeAllFixtures(b);
    for (const name of Object.keys(FIXTURES)) {
      const files = fs.readdirSync(path.join(a, name)).sort();
      assert.deepEqual(files, fs.readdirSync(path.join(b, name)).sort());
      assert.ok(files.includes('model.safetensors') && files.includes('tokenizer.json'));
      for (const f of files)
        assert.ok(fs.readFileSync(path.join(a, name, f)).equals(fs.readFileSync(path.join(b, name, f))), `${name}/${f}`);
    }
    // Different seeds give different weights.
    assert.ok(
      !fs
        .readFileSync(path.join(a, 'tiny-llama/model.safetensors'))
        .equals(fs.readFileSync(path.join(a, 'tiny-mistral/model.safetensors'))),
    );
  } finally {
    fs.rmSync(a, { recursive: true, force: true });
    fs.rmSync(b, { recursive: true, force: true });
  }
});

test('the BPE trainer learns a few hundred merges whose results are in the vocab', () => {
  const { vocab, merges } = trainBpe(TRAINING_TEXT, 1000);
  assert.ok(merges.length >= 200, `${merges.length} merges`);
  assert.equal(Object.keys(vocab).length, 256 + merges.length);
  for (const m of merges) {
    const [l, r] = m.split(' ');
    assert.ok(vocab[l] !== undefined && vocab[r] !== undefined && vocab[l + r] !== undefined, m);
  }
  assert.equal(merges[0], 't h', 'the most frequent pair (the, that, with, ...) merges first');
});

test('each fixture loads: config, checkpoint and family features', () => {
  for (const name of Object.keys(FIXTURES)) {
    const dir = fixturePath(name);
    const cfg = loadConfig(dir);
    const ck = openCheckpoint(dir);
    try {
      validateCheckpoint(cfg, ck);
    } finally {
      ck.close();
    }
    const tj = readJson(path.join(dir, 'tokenizer.json')) as { model: { vocab: object }; added_tokens: unknown[] };
    assert.equal(cfg.vocabSize, Object.keys(tj.model.vocab).length + tj.added_tokens.length);
    assert.ok(cfg.eosTokenIds.length === 2);
  }
  const llama = loadConfig(fixturePath('tiny-llama'));
  assert.deepEqual(
    [llama.family, llama.tieWordEmbeddings, llama.attentionBias, llama.slidingWindow, llama.nKvHeads],
    ['llama', false, false, null, 2],
  );
  const qwen = loadConfig(fixturePath('tiny-qwen2'));
  assert.deepEqual([qwen.family, qwen.tieWordEmbeddings, qwen.attentionBias, qwen.slidingWindow], ['qwen2', true, true, null]);
  const mistral = loadConfig(fixturePath('tiny-mistral'));
  assert.deepEqual([mistral.family, mistral.slidingWindow], ['mistral', 32]);
});

test('the fixture tokenizer loads in @huggingface/tokenizers and round-trips text', () => {
  const dir = fixturePath('tiny-qwen2');
  const tok = new HfTokenizer(readJson(path.join(dir, 'tokenizer.json')), readJson(path.join(dir, 'tokenizer_config.json')));
  const text = "The keeper's notebook: 12,345 words.\n\n  Ünïcödé 🙂 and code { x => x + 1 }";
  const enc = tok.encode(text, { add_special_tokens: false });
  assert.equal(tok.decode(enc.ids), text);
  assert.ok(enc.ids.length < Buffer.byteLength(text) * 0.8, 'merges apply');
  assert.deepEqual(tok.tokenize(' the notebook'), ['Ġthe', 'Ġnotebook']);
  const cfg = loadConfig(dir);
  const specials = tok.encode(SPECIAL_TOKENS.join(''), { add_special_tokens: false }).ids;
  assert.deepEqual(specials, [cfg.vocabSize - 4, cfg.vocabSize - 3, cfg.vocabSize - 2, cfg.vocabSize - 1]);
});

test('the chat template renders with @huggingface/jinja', () => {
  const tc = readJson(path.join(fixturePath('tiny-llama'), 'tokenizer_config.json'));
  assert.equal(tc['chat_template'], CHAT_TEMPLATE);
  const out = new Template(CHAT_TEMPLATE).render({
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Q?' },
      { role: 'assistant', content: 'A.' },
      { role: 'user', content: 'Again?' },
    ],
    add_generation_prompt: true,
  });
  assert.equal(out, 'Be brief.\n<|user|>Q?<|end|><|assistant|>A.<|end|><|user|>Again?<|end|><|assistant|>');
});
