import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig, parseConfig } from '../../engine/config';

const FILE = '/models/x/config.json';

function base(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model_type: 'llama',
    hidden_size: 256,
    num_hidden_layers: 4,
    num_attention_heads: 8,
    intermediate_size: 512,
    vocab_size: 1000,
    max_position_embeddings: 4096,
    ...over,
  };
}

function throwsWith(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: Error) => {
    for (const p of parts) assert.ok(e.message.includes(p), `expected "${p}" in: ${e.message}`);
    return true;
  });
}

test('llama defaults: kv heads = heads, head_dim = hidden/heads, no bias, no window, untied', () => {
  const c = parseConfig(base(), FILE);
  assert.equal(c.family, 'llama');
  assert.equal(c.nKvHeads, 8);
  assert.equal(c.headDim, 32);
  assert.equal(c.attentionBias, false);
  assert.equal(c.slidingWindow, null);
  assert.equal(c.tieWordEmbeddings, false);
  assert.equal(c.ropeTheta, 10000);
  assert.equal(c.rmsNormEps, 1e-6);
  assert.equal(c.ropeScaling, null);
  assert.equal(c.bosTokenId, null);
  assert.deepEqual(c.eosTokenIds, []);
});

test('the result is deeply frozen', () => {
  const c = parseConfig(base({ eos_token_id: [1, 2], rope_scaling: { type: 'linear', factor: 2 } }), FILE);
  assert.ok(Object.isFrozen(c));
  assert.ok(Object.isFrozen(c.eosTokenIds));
  assert.ok(Object.isFrozen(c.ropeScaling));
  assert.throws(() => {
    (c as { hiddenSize: number }).hiddenSize = 1;
  });
});

test('llama reads attention_bias and ignores sliding_window', () => {
  const c = parseConfig(
    base({ attention_bias: true, sliding_window: 128, num_key_value_heads: 2, rms_norm_eps: 1e-5, rope_theta: 500000 }),
    FILE,
  );
  assert.equal(c.attentionBias, true);
  assert.equal(c.slidingWindow, null);
  assert.equal(c.nKvHeads, 2);
  assert.equal(c.rmsNormEps, 1e-5);
  assert.equal(c.ropeTheta, 500000);
});

test('llama mlp_bias true is refused', () => {
  throwsWith(() => parseConfig(base({ mlp_bias: true }), FILE), FILE, 'mlp_bias');
  assert.equal(parseConfig(base({ mlp_bias: false }), FILE).family, 'llama');
});

test('qwen2: q/k/v bias always; sliding window only with use_sliding_window true', () => {
  const q = (over: Record<string, unknown>) => parseConfig(base({ model_type: 'qwen2', tie_word_embeddings: true, ...over }), FILE);
  assert.equal(q({}).attentionBias, true);
  assert.equal(q({}).tieWordEmbeddings, true);
  assert.equal(q({ sliding_window: 4096 }).slidingWindow, null);
  assert.equal(q({ sliding_window: 4096, use_sliding_window: false }).slidingWindow, null);
  assert.equal(q({ sliding_window: 64, use_sliding_window: true, max_window_layers: 0 }).slidingWindow, 64);
  // Layers >= max_window_layers slide; with max_window_layers >= num_hidden_layers none does (HF default 28).
  assert.equal(q({ sliding_window: 64, use_sliding_window: true }).slidingWindow, null);
  assert.equal(q({ sliding_window: 64, use_sliding_window: true, max_window_layers: 4 }).slidingWindow, null);
  throwsWith(() => q({ sliding_window: 64, use_sliding_window: true, max_window_layers: 2 }), FILE, 'max_window_layers', 'mixed');
});

test('mistral: sliding_window honoured, null means full attention', () => {
  const m = (over: Record<string, unknown>) => parseConfig(base({ model_type: 'mistral', ...over }), FILE);
  assert.equal(m({ sliding_window: 4096 }).slidingWindow, 4096);
  assert.equal(m({ sliding_window: null }).slidingWindow, null);
  assert.equal(m({}).slidingWindow, null);
  assert.equal(m({ sliding_window: 4096, use_sliding_window: false }).slidingWindow, null);
  assert.equal(m({ sliding_window: 4096 }).attentionBias, false);
  throwsWith(() => m({ sliding_window: 0 }), 'sliding_window', FILE);
});

test('explicit head_dim may differ from hidden/heads (Mistral Nemo layout)', () => {
  const c = parseConfig(
    base({ model_type: 'mistral', hidden_size: 5120, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128 }),
    FILE,
  );
  assert.equal(c.headDim, 128);
  assert.equal(c.nKvHeads, 8);
});

test('eos_token_id may be a number or a list; bos read', () => {
  assert.deepEqual(parseConfig(base({ eos_token_id: 2, bos_token_id: 1 }), FILE).eosTokenIds, [2]);
  assert.equal(parseConfig(base({ bos_token_id: 1 }), FILE).bosTokenId, 1);
  assert.deepEqual(parseConfig(base({ eos_token_id: [7, 9] }), FILE).eosTokenIds, [7, 9]);
  throwsWith(() => parseConfig(base({ eos_token_id: ['x'] }), FILE), 'eos_token_id', FILE);
  throwsWith(() => parseConfig(base({ eos_token_id: 1000 }), FILE), 'eos_token_id', 'vocab_size');
  throwsWith(() => parseConfig(base({ bos_token_id: -1 }), FILE), 'bos_token_id');
});

test('rope_scaling: linear and llama3 under both "type" and "rope_type"', () => {
  assert.deepEqual(parseConfig(base({ rope_scaling: { type: 'linear', factor: 4 } }), FILE).ropeScaling, { type: 'linear', factor: 4 });
  assert.deepEqual(parseConfig(base({ rope_scaling: { rope_type: 'linear', factor: 2 } }), FILE).ropeScaling, {
    type: 'linear',
    factor: 2,
  });
  const llama3 = { factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
  const want = { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 };
  assert.deepEqual(parseConfig(base({ rope_scaling: { rope_type: 'llama3', ...llama3 } }), FILE).ropeScaling, want);
  assert.deepEqual(parseConfig(base({ rope_scaling: { type: 'llama3', ...llama3 } }), FILE).ropeScaling, want);
  assert.equal(parseConfig(base({ rope_scaling: { rope_type: 'default' } }), FILE).ropeScaling, null);
});

test('rope_scaling: missing llama3 fields and bad factors are named', () => {
  throwsWith(
    () =>
      parseConfig(
        base({ rope_scaling: { rope_type: 'llama3', factor: 8, high_freq_factor: 4, original_max_position_embeddings: 8192 } }),
        FILE,
      ),
    'rope_scaling.low_freq_factor',
    FILE,
  );
  throwsWith(() => parseConfig(base({ rope_scaling: { type: 'linear', factor: 0 } }), FILE), 'rope_scaling.factor');
  throwsWith(() => parseConfig(base({ rope_scaling: { factor: 2 } }), FILE), 'rope_scaling', 'missing');
  throwsWith(() => parseConfig(base({ rope_scaling: 'linear' }), FILE), 'rope_scaling');
});

test('unsupported rope_scaling types name the field, the value and the file', () => {
  throwsWith(() => parseConfig(base({ rope_scaling: { rope_type: 'yarn', factor: 4 } }), FILE), 'rope_scaling.rope_type', '"yarn"', FILE);
  throwsWith(() => parseConfig(base({ rope_scaling: { type: 'dynamic', factor: 2 } }), FILE), 'rope_scaling.type', '"dynamic"', FILE);
});

test('rope_parameters (newer transformers layout) is read', () => {
  const c = parseConfig(base({ rope_parameters: { rope_type: 'linear', factor: 2, rope_theta: 1e6 } }), FILE);
  assert.equal(c.ropeTheta, 1e6);
  assert.deepEqual(c.ropeScaling, { type: 'linear', factor: 2 });
  assert.equal(parseConfig(base({ rope_parameters: { rope_type: 'default', rope_theta: 5e5 } }), FILE).ropeScaling, null);
});

test('unknown or missing model_type is named with its value', () => {
  throwsWith(() => parseConfig(base({ model_type: 'gpt2' }), FILE), 'model_type', '"gpt2"', FILE);
  const noType = base();
  delete noType['model_type'];
  throwsWith(() => parseConfig(noType, FILE), 'model_type', 'missing');
});

test('missing and malformed structural fields are named', () => {
  for (const field of [
    'hidden_size',
    'num_hidden_layers',
    'num_attention_heads',
    'intermediate_size',
    'vocab_size',
    'max_position_embeddings',
  ]) {
    const c = base();
    delete c[field];
    throwsWith(() => parseConfig(c, FILE), field, 'missing', FILE);
    throwsWith(() => parseConfig(base({ [field]: 0 }), FILE), field, 'positive integer');
    throwsWith(() => parseConfig(base({ [field]: 2.5 }), FILE), field);
    throwsWith(() => parseConfig(base({ [field]: '64' }), FILE), field);
  }
  throwsWith(() => parseConfig(base({ rms_norm_eps: -1 }), FILE), 'rms_norm_eps');
  throwsWith(() => parseConfig(base({ tie_word_embeddings: 'yes' }), FILE), 'tie_word_embeddings');
  throwsWith(() => parseConfig([1, 2], FILE), FILE, 'JSON object');
  throwsWith(() => parseConfig(null, FILE), FILE);
});

test('heads must divide by kv heads; hidden must divide by heads without head_dim', () => {
  throwsWith(() => parseConfig(base({ num_key_value_heads: 3 }), FILE), 'num_attention_heads', 'num_key_value_heads');
  throwsWith(() => parseConfig(base({ hidden_size: 250 }), FILE), 'hidden_size', 'num_attention_heads');
  throwsWith(() => parseConfig(base({ hidden_size: 8 * 33 }), FILE), 'head_dim', 'even');
});

test('loadConfig reads config.json and adds eos ids from generation_config.json', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-config-'));
  try {
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(base({ model_type: 'qwen2', eos_token_id: 5 })));
    assert.deepEqual(loadConfig(dir).eosTokenIds, [5]);
    fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [6, 5] }));
    const c = loadConfig(dir);
    assert.deepEqual(c.eosTokenIds, [5, 6]);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.eosTokenIds));
    fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: 99999 }));
    throwsWith(() => loadConfig(dir), 'generation_config.json', 'eos_token_id');
    fs.writeFileSync(path.join(dir, 'config.json'), '{ "model_type": ');
    throwsWith(() => loadConfig(dir), path.join(dir, 'config.json'), 'invalid JSON');
    fs.rmSync(path.join(dir, 'config.json'));
    throwsWith(() => loadConfig(dir), path.join(dir, 'config.json'), 'not found');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('attend_sink_tokens: read when present (0 allowed), null when absent, bad values named', () => {
  assert.equal(parseConfig(base(), FILE).attentionSinks, null);
  assert.equal(parseConfig(base({ attend_sink_tokens: 4 }), FILE).attentionSinks, 4);
  assert.equal(parseConfig(base({ attend_sink_tokens: 0 }), FILE).attentionSinks, 0);
  throwsWith(() => parseConfig(base({ attend_sink_tokens: -1 }), FILE), 'attend_sink_tokens', '-1', FILE);
  throwsWith(() => parseConfig(base({ attend_sink_tokens: 'four' }), FILE), 'attend_sink_tokens', FILE);
});

test('attend_max_sink_distance: read when present, null when absent, bad values named', () => {
  assert.equal(parseConfig(base(), FILE).sinkDistance, null);
  assert.equal(parseConfig(base({ attend_max_sink_distance: 720 }), FILE).sinkDistance, 720);
  throwsWith(() => parseConfig(base({ attend_max_sink_distance: 0 }), FILE), 'attend_max_sink_distance', '0', FILE);
  throwsWith(() => parseConfig(base({ attend_max_sink_distance: 7.5 }), FILE), 'attend_max_sink_distance', FILE);
});

test('attend_quote_answers: the fixed replies when present, null when absent, anything but non-empty strings named', () => {
  assert.equal(parseConfig(base(), FILE).quoteReplies, null);
  assert.deepEqual(parseConfig(base({ attend_quote_answers: ['not found'] }), FILE).quoteReplies, ['not found']);
  assert.deepEqual(parseConfig(base({ attend_quote_answers: [] }), FILE).quoteReplies, [], 'quotes only');
  for (const bad of ['not found', [1], [' '], {}])
    throwsWith(() => parseConfig(base({ attend_quote_answers: bad }), FILE), 'attend_quote_answers', 'list of non-empty strings', FILE);
});
