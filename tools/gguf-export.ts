// A small safetensors (Hugging Face folder) -> GGUF v3 exporter, llama architecture, F32 or F16 weights, so llama.cpp
// can run the very weights the engine runs. Enough tokenizer metadata for llama.cpp to load the file; the benchmark
// feeds token ids directly, so tokenizer details never decide a result.
// usage: node out/tools/gguf-export.js MODEL_DIR OUT.gguf [--f16]
// Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (little-endian; key/values, tensor infos, aligned data).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../engine/config';
import { ropeInverseFrequencies } from '../engine/graph/decoder';
import { W } from '../engine/graph/io';
import { f32ToF16Bits, hasOutputBias, openCheckpoint } from '../engine/safetensors';
import type { ModelConfig } from '../engine/types';

const GGUF_MAGIC = 0x46554747; // "GGUF"
const GGUF_VERSION = 3;
const ALIGN = 32;

// gguf_type
const T = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 } as const;
// ggml_type
const GGML_F32 = 0;
const GGML_F16 = 1;

type Value =
  | { t: 'u32' | 'i32' | 'f32'; v: number }
  | { t: 'bool'; v: boolean }
  | { t: 'string'; v: string }
  | { t: 'strings'; v: readonly string[] }
  | { t: 'i32s'; v: readonly number[] };

/** Grows a little-endian byte buffer. */
class Bytes {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u32(x: number): void {
    this.room(4);
    this.buf.writeUInt32LE(x, this.length);
    this.length += 4;
  }
  i32(x: number): void {
    this.room(4);
    this.buf.writeInt32LE(x, this.length);
    this.length += 4;
  }
  u64(x: number): void {
    this.room(8);
    this.buf.writeBigUInt64LE(BigInt(x), this.length);
    this.length += 8;
  }
  f32(x: number): void {
    this.room(4);
    this.buf.writeFloatLE(x, this.length);
    this.length += 4;
  }
  u8(x: number): void {
    this.room(1);
    this.buf[this.length++] = x;
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.room(b.length);
    b.copy(this.buf, this.length);
    this.length += b.length;
  }
  pad(align: number): void {
    while (this.length % align !== 0) this.u8(0);
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function writeValue(b: Bytes, val: Value): void {
  switch (val.t) {
    case 'u32':
      b.u32(T.u32);
      b.u32(val.v);
      return;
    case 'i32':
      b.u32(T.i32);
      b.i32(val.v);
      return;
    case 'f32':
      b.u32(T.f32);
      b.f32(val.v);
      return;
    case 'bool':
      b.u32(T.bool);
      b.u8(val.v ? 1 : 0);
      return;
    case 'string':
      b.u32(T.string);
      b.str(val.v);
      return;
    case 'strings':
      b.u32(T.array);
      b.u32(T.string);
      b.u64(val.v.length);
      for (const s of val.v) b.str(s);
      return;
    case 'i32s':
      b.u32(T.array);
      b.u32(T.i32);
      b.u64(val.v.length);
      for (const x of val.v) b.i32(x);
      return;
  }
}

/** A tensor to write: GGUF name, ggml dims (innermost first) and a function producing its fp32 data when written. */
interface OutTensor {
  readonly name: string;
  readonly dims: readonly number[];
  readonly type: number;
  readonly data: () => Float32Array;
}

/**
 * HF rotates q/k by halves (rotate_half); llama.cpp's llama architecture rotates adjacent pairs. Permuting each head's
 * output rows (i, half) -> (i * 2 + half) makes the two agree (the permutation convert_hf_to_gguf.py applies).
 */
export function permuteForRope(w: Float32Array, nHeads: number, rowLen: number): Float32Array {
  const rows = w.length / rowLen;
  const d = rows / nHeads;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHeads; h++) {
    for (let half = 0; half < 2; half++) {
      for (let i = 0; i < d / 2; i++) {
        const from = (h * d + half * (d / 2) + i) * rowLen;
        const to = (h * d + i * 2 + half) * rowLen;
        out.set(w.subarray(from, from + rowLen), to);
      }
    }
  }
  return out;
}

interface TokenizerJson {
  model: { type?: string; vocab: Record<string, number>; merges?: (string | [string, string])[] };
  added_tokens?: { id: number; content: string; special?: boolean }[];
}

function tokenizerKeys(dir: string, cfg: ModelConfig): [string, Value][] {
  const tj = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')) as TokenizerJson;
  const tokens: string[] = new Array<string>(cfg.vocabSize);
  const types: number[] = new Array<number>(cfg.vocabSize).fill(1); // 1 normal
  for (const [s, id] of Object.entries(tj.model.vocab)) if (id < cfg.vocabSize) tokens[id] = s;
  for (const a of tj.added_tokens ?? []) {
    if (a.id >= cfg.vocabSize) continue;
    tokens[a.id] = a.content;
    types[a.id] = a.special === false ? 4 : 3; // user-defined : control
  }
  for (let i = 0; i < cfg.vocabSize; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`; // padded rows past the tokenizer, as in Qwen checkpoints
      types[i] = 5; // unused
    }
  }
  const merges = (tj.model.merges ?? []).map((m) => (Array.isArray(m) ? m.join(' ') : m));
  const keys: [string, Value][] = [
    ['tokenizer.ggml.model', { t: 'string', v: 'gpt2' }],
    ['tokenizer.ggml.pre', { t: 'string', v: 'default' }],
    ['tokenizer.ggml.tokens', { t: 'strings', v: tokens }],
    ['tokenizer.ggml.token_type', { t: 'i32s', v: types }],
    ['tokenizer.ggml.merges', { t: 'strings', v: merges }],
    ['tokenizer.ggml.add_bos_token', { t: 'bool', v: false }],
  ];
  if (cfg.bosTokenId !== null) keys.push(['tokenizer.ggml.bos_token_id', { t: 'u32', v: cfg.bosTokenId }]);
  if (cfg.eosTokenIds.length > 0) keys.push(['tokenizer.ggml.eos_token_id', { t: 'u32', v: cfg.eosTokenIds[0] }]);
  return keys;
}

export interface GgufExportOptions {
  /** Matrix weights in F16 (norms and rope factors stay F32, as llama.cpp's converter does). Default F32. */
  readonly f16?: boolean;
}

/** Writes `outFile` from the model folder `dir`; returns the number of tensors written. */
export function exportGguf(dir: string, outFile: string, opts: GgufExportOptions = {}): number {
  const cfg = loadConfig(dir);
  const ckpt = openCheckpoint(dir);
  try {
    const { hiddenSize: h, nHeads, nKvHeads, headDim: d, intermediateSize: inter, vocabSize: vocab } = cfg;
    const mat = opts.f16 ? GGML_F16 : GGML_F32;
    const tensors: OutTensor[] = [];
    const add = (name: string, dims: number[], type: number, data: () => Float32Array): void => {
      tensors.push({ name, dims, type, data });
    };
    add('token_embd.weight', [h, vocab], mat, () => ckpt.readF32(W.embed, [vocab, h]));
    if (cfg.ropeScaling !== null) {
      // llama.cpp divides each rotary frequency by rope_freqs[i]: exactly the engine's scaling, whatever its type.
      const base = ropeInverseFrequencies({ ...cfg, ropeScaling: null });
      const scaled = ropeInverseFrequencies(cfg);
      add('rope_freqs.weight', [d / 2], GGML_F32, () => base.map((f, i) => f / scaled[i]));
    }
    for (let l = 0; l < cfg.nLayers; l++) {
      const b = `blk.${l}.`;
      add(b + 'attn_norm.weight', [h], GGML_F32, () => ckpt.readF32(W.inputNorm(l), [h]));
      add(b + 'attn_q.weight', [h, nHeads * d], mat, () => permuteForRope(ckpt.readF32(W.proj(l, 'q'), [nHeads * d, h]), nHeads, h));
      add(b + 'attn_k.weight', [h, nKvHeads * d], mat, () => permuteForRope(ckpt.readF32(W.proj(l, 'k'), [nKvHeads * d, h]), nKvHeads, h));
      add(b + 'attn_v.weight', [h, nKvHeads * d], mat, () => ckpt.readF32(W.proj(l, 'v'), [nKvHeads * d, h]));
      add(b + 'attn_output.weight', [nHeads * d, h], mat, () => ckpt.readF32(W.proj(l, 'o'), [h, nHeads * d]));
      if (cfg.attentionBias) {
        add(b + 'attn_q.bias', [nHeads * d], GGML_F32, () => permuteForRope(ckpt.readF32(W.projBias(l, 'q'), [nHeads * d]), nHeads, 1));
        add(b + 'attn_k.bias', [nKvHeads * d], GGML_F32, () =>
          permuteForRope(ckpt.readF32(W.projBias(l, 'k'), [nKvHeads * d]), nKvHeads, 1),
        );
        add(b + 'attn_v.bias', [nKvHeads * d], GGML_F32, () => ckpt.readF32(W.projBias(l, 'v'), [nKvHeads * d]));
      }
      if (hasOutputBias(cfg)) add(b + 'attn_output.bias', [h], GGML_F32, () => ckpt.readF32(W.projBias(l, 'o'), [h]));
      add(b + 'ffn_norm.weight', [h], GGML_F32, () => ckpt.readF32(W.postNorm(l), [h]));
      add(b + 'ffn_gate.weight', [h, inter], mat, () => ckpt.readF32(W.mlp(l, 'gate'), [inter, h]));
      add(b + 'ffn_up.weight', [h, inter], mat, () => ckpt.readF32(W.mlp(l, 'up'), [inter, h]));
      add(b + 'ffn_down.weight', [inter, h], mat, () => ckpt.readF32(W.mlp(l, 'down'), [h, inter]));
    }
    add('output_norm.weight', [h], GGML_F32, () => ckpt.readF32(W.finalNorm, [h]));
    // Tied embeddings: llama.cpp falls back to token_embd when output.weight is absent.
    if (!cfg.tieWordEmbeddings) add('output.weight', [h, vocab], mat, () => ckpt.readF32(W.lmHead, [vocab, h]));

    const kv: [string, Value][] = [
      ['general.architecture', { t: 'string', v: 'llama' }],
      ['general.name', { t: 'string', v: path.basename(dir) }],
      ['general.alignment', { t: 'u32', v: ALIGN }],
      ['general.file_type', { t: 'u32', v: opts.f16 ? 1 : 0 }],
      ['llama.context_length', { t: 'u32', v: cfg.maxPositionEmbeddings }],
      ['llama.embedding_length', { t: 'u32', v: h }],
      ['llama.block_count', { t: 'u32', v: cfg.nLayers }],
      ['llama.feed_forward_length', { t: 'u32', v: inter }],
      ['llama.attention.head_count', { t: 'u32', v: nHeads }],
      ['llama.attention.head_count_kv', { t: 'u32', v: nKvHeads }],
      ['llama.attention.key_length', { t: 'u32', v: d }],
      ['llama.attention.value_length', { t: 'u32', v: d }],
      ['llama.rope.dimension_count', { t: 'u32', v: d }],
      ['llama.rope.freq_base', { t: 'f32', v: cfg.ropeTheta }],
      ['llama.attention.layer_norm_rms_epsilon', { t: 'f32', v: cfg.rmsNormEps }],
      ['llama.vocab_size', { t: 'u32', v: vocab }],
      ...tokenizerKeys(dir, cfg),
    ];

    const head = new Bytes();
    head.u32(GGUF_MAGIC);
    head.u32(GGUF_VERSION);
    head.u64(tensors.length);
    head.u64(kv.length);
    for (const [k, v] of kv) {
      head.str(k);
      writeValue(head, v);
    }
    let offset = 0;
    const sizes: number[] = [];
    for (const t of tensors) {
      head.str(t.name);
      head.u32(t.dims.length);
      for (const x of t.dims) head.u64(x);
      head.u32(t.type);
      head.u64(offset);
      const bytes = t.dims.reduce((a, b) => a * b, 1) * (t.type === GGML_F16 ? 2 : 4);
      sizes.push(bytes);
      offset += Math.ceil(bytes / ALIGN) * ALIGN;
    }
    head.pad(ALIGN);

    // Tensors are produced and written one at a time, so memory stays at one tensor whatever the model size.
    const fd = fs.openSync(outFile, 'w');
    try {
      fs.writeSync(fd, head.bytes());
      tensors.forEach((t, i) => {
        const f = t.data();
        let buf: Buffer;
        if (t.type === GGML_F16) {
          const u = new Uint16Array(f.length);
          for (let j = 0; j < f.length; j++) u[j] = f32ToF16Bits(f[j]);
          buf = Buffer.from(u.buffer, u.byteOffset, u.byteLength);
        } else {
          buf = Buffer.from(f.buffer, f.byteOffset, f.byteLength);
        }
        if (buf.length !== sizes[i]) throw new Error(`gguf export: tensor ${t.name} has ${buf.length} bytes, expected ${sizes[i]}`);
        fs.writeSync(fd, buf);
        const pad = Math.ceil(buf.length / ALIGN) * ALIGN - buf.length;
        if (pad > 0) fs.writeSync(fd, Buffer.alloc(pad));
      });
    } finally {
      fs.closeSync(fd);
    }
    return tensors.length;
  } finally {
    ckpt.close();
  }
}

if (require.main === module) {
  const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  if (args.length !== 2) {
    process.stderr.write('usage: node out/tools/gguf-export.js MODEL_DIR OUT.gguf [--f16]\n');
    process.exit(2);
  }
  const n = exportGguf(args[0], args[1], { f16: process.argv.includes('--f16') });
  process.stdout.write(`gguf-export: wrote ${n} tensors to ${args[1]}\n`);
}
