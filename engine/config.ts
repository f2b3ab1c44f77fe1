// Parses a Hugging Face config.json (llama, qwen2, mistral) into the frozen ModelConfig the engine codes to.
// Semantics follow transformers' configuration_{llama,qwen2,mistral}.py and modeling_rope_utils.py; anything the
// engine cannot run faithfully (yarn/dynamic RoPE, MLP bias, mixed per-layer windows) is an error, never a guess.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelConfig, ModelFamily, RopeScaling } from './types';

const FAMILIES: readonly ModelFamily[] = ['llama', 'qwen2', 'mistral'];

/** transformers' Qwen2Config default for `max_window_layers`. */
const QWEN2_DEFAULT_MAX_WINDOW_LAYERS = 28;

type Json = Record<string, unknown>;

class Fields {
  constructor(
    private readonly obj: Json,
    readonly file: string,
    private readonly prefix = '',
  ) {}

  fail(field: string, problem: string): never {
    throw new Error(`${this.file}: ${this.prefix}${field} ${problem}`);
  }

  has(field: string): boolean {
    return this.obj[field] !== undefined && this.obj[field] !== null;
  }

  raw(field: string): unknown {
    return this.obj[field];
  }

  posInt(field: string, fallback?: number): number {
    const v = this.obj[field];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.fail(field, 'is missing (expected a positive integer)');
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      this.fail(field, `must be a positive integer, got ${show(v)}`);
    }
    return v;
  }

  posNumber(field: string, fallback?: number): number {
    const v = this.obj[field];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      this.fail(field, 'is missing (expected a positive number)');
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      this.fail(field, `must be a positive number, got ${show(v)}`);
    }
    return v;
  }

  bool(field: string, fallback: boolean): boolean {
    const v = this.obj[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') this.fail(field, `must be true or false, got ${show(v)}`);
    return v;
  }

  /** A token id: non-negative integer or null. */
  tokenId(field: string): number | null {
    const v = this.obj[field];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      this.fail(field, `must be a token id (non-negative integer) or null, got ${show(v)}`);
    }
    return v;
  }

  /** eos_token_id: a token id, a list of them, or null. */
  tokenIds(field: string): number[] {
    const v = this.obj[field];
    if (v === undefined || v === null) return [];
    const list = Array.isArray(v) ? v : [v];
    for (const id of list) {
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) {
        this.fail(field, `must be a token id or a list of token ids, got ${show(v)}`);
      }
    }
    return list as number[];
  }
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseRopeScaling(raw: unknown, field: string, file: string): RopeScaling | null {
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) throw new Error(`${file}: ${field} must be an object or null, got ${show(raw)}`);
  const f = new Fields(raw, file, `${field}.`);
  // Newer configs say `rope_type`, older ones `type`; transformers accepts both.
  const typeKey = raw['rope_type'] !== undefined ? 'rope_type' : 'type';
  const type = raw[typeKey];
  if (type === undefined) f.fail('rope_type', 'is missing');
  switch (type) {
    case 'default':
      return null;
    case 'linear':
      return Object.freeze({ type: 'linear', factor: f.posNumber('factor') });
    case 'llama3': {
      const lowFreqFactor = f.posNumber('low_freq_factor');
      const highFreqFactor = f.posNumber('high_freq_factor');
      if (highFreqFactor <= lowFreqFactor) {
        f.fail('high_freq_factor', `(${highFreqFactor}) must be greater than low_freq_factor (${lowFreqFactor})`);
      }
      return Object.freeze({
        type: 'llama3',
        factor: f.posNumber('factor'),
        lowFreqFactor,
        highFreqFactor,
        originalMaxPositionEmbeddings: f.posInt('original_max_position_embeddings'),
      });
    }
    default:
      throw new Error(`${file}: ${field}.${typeKey} ${show(type)} is not supported (supported: "linear", "llama3", or null)`);
  }
}

/** Validates a parsed config.json. `file` is used in every error message. */
export function parseConfig(json: unknown, file: string): ModelConfig {
  if (!isObject(json)) throw new Error(`${file}: expected a JSON object, got ${show(json)}`);
  const f = new Fields(json, file);

  const modelType = json['model_type'];
  if (modelType === undefined) f.fail('model_type', `is missing (supported: ${FAMILIES.join(', ')})`);
  if (typeof modelType !== 'string' || !(FAMILIES as readonly string[]).includes(modelType)) {
    f.fail('model_type', `${show(modelType)} is not supported (supported: ${FAMILIES.join(', ')})`);
  }
  const family = modelType as ModelFamily;

  const hiddenSize = f.posInt('hidden_size');
  const nLayers = f.posInt('num_hidden_layers');
  const nHeads = f.posInt('num_attention_heads');
  const nKvHeads = f.posInt('num_key_value_heads', nHeads);
  if (nHeads % nKvHeads !== 0) {
    f.fail('num_attention_heads', `(${nHeads}) must be divisible by num_key_value_heads (${nKvHeads})`);
  }
  let headDim: number;
  if (f.has('head_dim')) {
    // An explicit head_dim may differ from hidden/heads (e.g. Mistral Nemo), so hidden_size is not checked against it.
    headDim = f.posInt('head_dim');
  } else {
    if (hiddenSize % nHeads !== 0) {
      f.fail('hidden_size', `(${hiddenSize}) must be divisible by num_attention_heads (${nHeads}) when head_dim is absent`);
    }
    headDim = hiddenSize / nHeads;
  }
  if (headDim % 2 !== 0) f.fail('head_dim', `(${headDim}) must be even for rotary embeddings`);

  const intermediateSize = f.posInt('intermediate_size');
  const vocabSize = f.posInt('vocab_size');
  const maxPositionEmbeddings = f.posInt('max_position_embeddings');
  const rmsNormEps = f.posNumber('rms_norm_eps', 1e-6);

  // transformers >= 4.5x may group RoPE settings under `rope_parameters`.
  let ropeTheta: number;
  let ropeScaling: RopeScaling | null;
  const ropeParams = json['rope_parameters'];
  if (isObject(ropeParams)) {
    const rp = new Fields(ropeParams, file, 'rope_parameters.');
    ropeTheta = rp.posNumber('rope_theta', f.posNumber('rope_theta', 10000));
    ropeScaling = parseRopeScaling(ropeParams, 'rope_parameters', file);
  } else {
    ropeTheta = f.posNumber('rope_theta', 10000);
    ropeScaling = parseRopeScaling(json['rope_scaling'], 'rope_scaling', file);
  }

  if (family === 'llama' && f.bool('mlp_bias', false)) {
    f.fail('mlp_bias', 'true is not supported (MLP projections with bias)');
  }
  const attentionBias = family === 'qwen2' ? true : family === 'llama' ? f.bool('attention_bias', false) : false;

  let slidingWindow: number | null = null;
  if (family === 'mistral') {
    if (f.bool('use_sliding_window', true) && f.has('sliding_window')) slidingWindow = f.posInt('sliding_window');
  } else if (family === 'qwen2') {
    if (f.bool('use_sliding_window', false) && f.has('sliding_window')) {
      // Qwen2 slides only in layers >= max_window_layers; one window for all layers is all ModelConfig can say.
      const maxWindowLayers = f.has('max_window_layers')
        ? f.raw('max_window_layers') === 0
          ? 0
          : f.posInt('max_window_layers')
        : QWEN2_DEFAULT_MAX_WINDOW_LAYERS;
      if (maxWindowLayers === 0) slidingWindow = f.posInt('sliding_window');
      else if (maxWindowLayers < nLayers) {
        f.fail(
          'max_window_layers',
          `(${maxWindowLayers}) < num_hidden_layers (${nLayers}) with use_sliding_window: mixed full/sliding layers are not supported`,
        );
      }
    }
  }

  const bosTokenId = f.tokenId('bos_token_id');
  const eosTokenIds = f.tokenIds('eos_token_id');
  if (bosTokenId !== null && bosTokenId >= vocabSize) {
    f.fail('bos_token_id', `(${bosTokenId}) is >= vocab_size (${vocabSize})`);
  }
  for (const id of eosTokenIds) {
    if (id >= vocabSize) f.fail('eos_token_id', `(${id}) is >= vocab_size (${vocabSize})`);
  }

  let attentionSinks: number | null = null;
  if (f.has('attend_sink_tokens')) {
    const v = f.raw('attend_sink_tokens');
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) attentionSinks = v;
    else f.fail('attend_sink_tokens', `must be a non-negative integer, got ${show(v)}`);
  }
  let sinkDistance: number | null = null;
  if (f.has('attend_max_sink_distance')) {
    const v = f.raw('attend_max_sink_distance');
    if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) sinkDistance = v;
    else f.fail('attend_max_sink_distance', `must be a positive integer, got ${show(v)}`);
  }
  let quoteReplies: readonly string[] | null = null;
  if (f.has('attend_quote_answers')) {
    const v = f.raw('attend_quote_answers');
    if (Array.isArray(v) && v.every((x) => typeof x === 'string' && x.trim() !== '')) quoteReplies = Object.freeze([...v]);
    else f.fail('attend_quote_answers', `must be a list of non-empty strings, got ${show(v)}`);
  }
  return Object.freeze({
    family,
    hiddenSize,
    nLayers,
    nHeads,
    nKvHeads,
    headDim,
    intermediateSize,
    vocabSize,
    rmsNormEps,
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings,
    slidingWindow,
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    attentionBias,
    bosTokenId,
    eosTokenIds: Object.freeze(eosTokenIds),
    attentionSinks,
    sinkDistance,
    quoteReplies,
  });
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `${file}: not found` : `${file}: cannot read (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (e) {
    throw new Error(`${file}: invalid JSON (${(e as Error).message})`);
  }
}

/**
 * Reads `dir/config.json`. If `dir/generation_config.json` exists, its eos_token_id(s) are added after the config's
 * own (chat models often list extra stop tokens there only).
 */
export function loadConfig(dir: string): ModelConfig {
  const configFile = path.resolve(dir, 'config.json');
  const cfg = parseConfig(readJson(configFile), configFile);
  const genFile = path.resolve(dir, 'generation_config.json');
  if (!fs.existsSync(genFile)) return cfg;
  const gen = readJson(genFile);
  if (!isObject(gen)) throw new Error(`${genFile}: expected a JSON object, got ${show(gen)}`);
  const extra = new Fields(gen, genFile).tokenIds('eos_token_id');
  for (const id of extra) {
    if (id >= cfg.vocabSize) throw new Error(`${genFile}: eos_token_id (${id}) is >= vocab_size (${cfg.vocabSize})`);
  }
  const eos = [...cfg.eosTokenIds];
  for (const id of extra) if (!eos.includes(id)) eos.push(id);
  return Object.freeze({ ...cfg, eosTokenIds: Object.freeze(eos) });
}

/** Parameters that take part in a matmul for every token (embeddings are a lookup; the LM head runs once per chunk). */
export function matmulParameters(cfg: ModelConfig): number {
  const { hiddenSize: h, nHeads, nKvHeads, headDim: d, intermediateSize: inter, nLayers } = cfg;
  return nLayers * (h * (nHeads + 2 * nKvHeads) * d + nHeads * d * h + 3 * h * inter);
}
