// Random-weight benchmark models written once to disk in the Hugging Face layout, so the engine, the ask path and the
// GGUF exporter (llama.cpp peer) all read the very same safetensors file. Deterministic: same seed, same bytes.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../engine/config';
import { expectedTensors, SINGLE_FILE, writeSafetensors, type TensorToWrite } from '../engine/safetensors';
import { makeFixtureTokenizer, makeRng } from './make-fixture';

export interface BenchShape {
  readonly hiddenSize: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly intermediateSize: number;
  readonly vocabSize: number;
  readonly ropeTheta: number;
}

/**
 * ~100M parameters with Qwen2.5-0.5B / SmolLM2 proportions: GQA 3:1, head_dim 64, tied embeddings, rope_theta 1e6.
 * The tokenizer is the fixture's small byte-level BPE; rows past it are padding, as in real Qwen checkpoints.
 */
export const BENCH_SHAPES: Readonly<Record<string, BenchShape>> = {
  'random-100m': { hiddenSize: 768, nLayers: 12, nHeads: 12, nKvHeads: 4, intermediateSize: 2048, vocabSize: 32000, ropeTheta: 1e6 },
  /** Smaller sibling for the 128k-token memory run: the KV window is a larger share of its memory. */
  'random-30m': { hiddenSize: 512, nLayers: 8, nHeads: 8, nKvHeads: 4, intermediateSize: 1536, vocabSize: 32000, ropeTheta: 1e6 },
};

export const BENCH_MODEL_ROOT = process.env.ATTEND_BENCH_MODELS ?? path.join(os.tmpdir(), 'attend-bench-models');

function configJson(s: BenchShape, bos: number, eos: number): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: s.hiddenSize,
    num_hidden_layers: s.nLayers,
    num_attention_heads: s.nHeads,
    num_key_value_heads: s.nKvHeads,
    intermediate_size: s.intermediateSize,
    vocab_size: s.vocabSize,
    max_position_embeddings: 131072,
    rms_norm_eps: 1e-6,
    rope_theta: s.ropeTheta,
    rope_scaling: null,
    hidden_act: 'silu',
    tie_word_embeddings: true,
    attention_bias: false,
    bos_token_id: bos,
    eos_token_id: eos,
    torch_dtype: 'float32',
  };
}

/** The model folder for `name`, written on first use (a `.complete` marker guards against half-written folders). */
export function ensureBenchModel(name: string): string {
  const shape = BENCH_SHAPES[name];
  if (!shape) throw new Error(`unknown bench model '${name}' (known: ${Object.keys(BENCH_SHAPES).join(', ')})`);
  const dir = path.join(BENCH_MODEL_ROOT, name);
  const marker = path.join(dir, '.complete');
  if (fs.existsSync(marker)) return dir;
  fs.mkdirSync(dir, { recursive: true });
  const tok = makeFixtureTokenizer(131072);
  // End of text never comes up in a greedy run over random weights only by design: it is a real special id.
  const eot = tok.specialIds['<|endoftext|>'];
  const json = configJson(shape, eot, eot);
  const cfg = parseConfig(json, path.join(dir, 'config.json'));
  const rng = makeRng(2024);
  const tensors: TensorToWrite[] = expectedTensors(cfg).map(({ name: t, shape: dims }) => {
    const n = dims.reduce((a, b) => a * b, 1);
    // Norms near 1, matrices with std 1/sqrt(fan_in), embeddings std 1: activations and logits of a sane scale.
    const isNorm = t.endsWith('norm.weight');
    const std = isNorm ? 0.05 : dims.length === 2 && t !== 'model.embed_tokens.weight' ? 1 / Math.sqrt(dims[1]) : 1;
    const a = std * Math.sqrt(3);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = (isNorm ? 1 : 0) + (rng() * 2 - 1) * a;
    return { name: t, dtype: 'F32', shape: dims, data };
  });
  const write = (f: string, v: unknown): void => fs.writeFileSync(path.join(dir, f), JSON.stringify(v, null, 2) + '\n');
  write('config.json', json);
  write('tokenizer.json', tok.tokenizerJson);
  write('tokenizer_config.json', tok.tokenizerConfig);
  writeSafetensors(path.join(dir, SINGLE_FILE), tensors, { format: 'pt' });
  fs.writeFileSync(marker, '');
  return dir;
}

if (require.main === module) {
  for (const name of process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(BENCH_SHAPES)) {
    console.log(ensureBenchModel(name));
  }
}
