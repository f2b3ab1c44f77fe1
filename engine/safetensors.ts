// Safetensors checkpoints: header validation, lazy per-tensor reads (F32/F16/BF16 -> F32), the HF weight-name table,
// and a small writer for fixtures. Format: u64 LE header length N, N bytes of JSON header, then the data section;
// each tensor's data_offsets are [begin, end) relative to the start of the data section.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Checkpoint, DType, ModelConfig, TensorInfo } from './types';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

const DTYPE_BYTES: Readonly<Record<DType, number>> = { F32: 4, F16: 2, BF16: 2 };
/** Headers beyond this are certainly corrupt (the reference implementation caps at 100 MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** fs.readSync reads at most 2 GiB - 1 at once; convert half-precision tensors in chunks of this many bytes. */
const READ_CHUNK_BYTES = 1 << 24;

interface StoredTensor extends TensorInfo {
  /** Absolute byte offset in `file`. */
  readonly offset: number;
  readonly byteLength: number;
}

interface FileHeader {
  readonly tensors: StoredTensor[];
  readonly metadata: Readonly<Record<string, string>>;
}

function product(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function fmtShape(shape: readonly number[]): string {
  return `(${shape.join(', ')})`;
}

function isDType(v: unknown): v is DType {
  return v === 'F32' || v === 'F16' || v === 'BF16';
}

function readExactly(fd: number, buf: Uint8Array, position: number, file: string, what: string): void {
  let done = 0;
  while (done < buf.byteLength) {
    const n = fs.readSync(fd, buf, done, Math.min(buf.byteLength - done, 1 << 30), position + done);
    if (n === 0) throw new Error(`${file}: unexpected end of file while reading ${what}`);
    done += n;
  }
}

/** Reads and validates the header of one .safetensors file open on `fd`. */
function readHeader(fd: number, file: string): FileHeader {
  const fileSize = fs.fstatSync(fd).size;
  if (fileSize < 8) throw new Error(`${file}: truncated safetensors file (${fileSize} bytes, need at least 8)`);
  const lenBuf = Buffer.alloc(8);
  readExactly(fd, lenBuf, 0, file, 'the header length');
  const headerLen = lenBuf.readBigUInt64LE(0);
  if (headerLen > BigInt(fileSize - 8)) {
    throw new Error(`${file}: header length ${headerLen} exceeds the file (${fileSize} bytes); the file is truncated or not safetensors`);
  }
  if (headerLen > BigInt(MAX_HEADER_BYTES)) throw new Error(`${file}: header length ${headerLen} is implausibly large`);
  const n = Number(headerLen);
  const headerBuf = Buffer.alloc(n);
  readExactly(fd, headerBuf, 8, file, 'the header');
  let header: unknown;
  try {
    header = JSON.parse(headerBuf.toString('utf8'));
  } catch (e) {
    throw new Error(`${file}: header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new Error(`${file}: header must be a JSON object`);
  }
  const dataStart = 8 + n;
  const dataSize = fileSize - dataStart;
  const tensors: StoredTensor[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        throw new Error(`${file}: __metadata__ must be an object of strings`);
      }
      metadata = entry as Record<string, string>;
      continue;
    }
    if (typeof entry !== 'object' || entry === null) throw new Error(`${file}: tensor ${name}: header entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (!isDType(dtype)) {
      throw new Error(`${file}: tensor ${name} has dtype ${JSON.stringify(dtype)}; supported dtypes are F32, F16, BF16`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`${file}: tensor ${name} has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
      offsets[0] > offsets[1]
    ) {
      throw new Error(`${file}: tensor ${name} has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end > dataSize) {
      throw new Error(
        `${file}: tensor ${name} data_offsets [${begin}, ${end}) run past the end of the data section (${dataSize} bytes); the file is truncated`,
      );
    }
    const expected = product(shape as number[]) * DTYPE_BYTES[dtype];
    if (end - begin !== expected) {
      throw new Error(`${file}: tensor ${name} spans ${end - begin} bytes but ${dtype} ${fmtShape(shape as number[])} needs ${expected}`);
    }
    tensors.push(
      Object.freeze({
        name,
        dtype,
        shape: Object.freeze([...(shape as number[])]),
        file,
        offset: dataStart + begin,
        byteLength: end - begin,
      }),
    );
  }
  const byOffset = [...tensors].sort((a, b) => a.offset - b.offset || a.byteLength - b.byteLength);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1];
    const cur = byOffset[i];
    if (cur.offset < prev.offset + prev.byteLength) {
      throw new Error(`${file}: tensors ${prev.name} and ${cur.name} overlap in the data section`);
    }
  }
  return { tensors, metadata };
}

// ---------------------------------------------------------------------------------------------------------------
// Half-precision conversion

let f16Table: Uint32Array | null = null;

/** fp32 bit patterns for all 65536 fp16 values (256 KiB, built on first use). */
function f16ToF32Table(): Uint32Array {
  if (f16Table) return f16Table;
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    let mant = h & 0x3ff;
    if (exp === 0) {
      if (mant === 0) {
        t[h] = sign;
      } else {
        // Subnormal: renormalise into fp32's wider exponent range.
        let e = 113; // 127 - 15 + 1
        while ((mant & 0x400) === 0) {
          mant <<= 1;
          e--;
        }
        t[h] = (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
      }
    } else if (exp === 0x1f) {
      t[h] = (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf, or NaN with its payload
    } else {
      t[h] = (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
    }
  }
  f16Table = t;
  return t;
}

/** Converts little-endian fp16 (`src`) into fp32 bit patterns in `dst` starting at `dstOffset`. */
export function f16ToF32(src: Uint16Array, dst: Float32Array, dstOffset = 0): void {
  const table = f16ToF32Table();
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[dstOffset + i] = table[src[i]];
}

export function bf16ToF32(src: Uint16Array, dst: Float32Array, dstOffset = 0): void {
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[dstOffset + i] = src[i] << 16;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** fp32 -> fp16 bits, round to nearest even; overflow -> inf, NaN stays NaN. */
export function f32ToF16Bits(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // may carry into the exponent, up to inf: correct
  return sign | h;
}

/** fp32 -> bf16 bits, round to nearest even; NaN stays NaN. */
export function f32ToBF16Bits(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return ((bits >>> 16) | 0x40) & 0xffff;
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

// ---------------------------------------------------------------------------------------------------------------
// Checkpoint

const littleEndian = os.endianness() === 'LE';

class FileCheckpoint implements Checkpoint {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  private readonly stored: Map<string, StoredTensor>;
  private fds: Map<string, number> | null;

  constructor(
    readonly dir: string,
    fds: Map<string, number>,
    stored: Map<string, StoredTensor>,
    /** File to name when a tensor is absent: the index for sharded checkpoints. */
    readonly sourceFile: string,
  ) {
    this.fds = fds;
    this.stored = stored;
    this.tensors = stored;
  }

  readF32(name: string, expectShape?: readonly number[]): Float32Array {
    const t = this.stored.get(name);
    if (!t) throw new Error(`${this.sourceFile}: tensor ${name} not found`);
    if (expectShape && (expectShape.length !== t.shape.length || expectShape.some((d, i) => d !== t.shape[i]))) {
      throw new Error(`${t.file}: tensor ${name} has shape ${fmtShape(t.shape)}, expected ${fmtShape(expectShape)}`);
    }
    if (!this.fds) throw new Error(`${t.file}: checkpoint is closed (reading tensor ${name})`);
    const fd = this.fds.get(t.file);
    if (fd === undefined) throw new Error(`${t.file}: no open handle (reading tensor ${name})`);
    const count = product(t.shape);
    const out = new Float32Array(count);
    const what = `tensor ${name}`;
    if (t.dtype === 'F32') {
      readExactly(fd, new Uint8Array(out.buffer), t.offset, t.file, what);
      if (!littleEndian) byteSwap32(out);
      return out;
    }
    // Half precision: convert chunk by chunk so no second full-size copy is ever held.
    const chunkElems = Math.min(count, READ_CHUNK_BYTES / 2);
    const scratch = new Uint16Array(chunkElems);
    const scratchBytes = new Uint8Array(scratch.buffer);
    const convert = t.dtype === 'F16' ? f16ToF32 : bf16ToF32;
    for (let i = 0; i < count; i += chunkElems) {
      const n = Math.min(chunkElems, count - i);
      const view = n === chunkElems ? scratch : scratch.subarray(0, n);
      readExactly(fd, scratchBytes.subarray(0, n * 2), t.offset + i * 2, t.file, what);
      if (!littleEndian) byteSwap16(view);
      convert(view, out, i);
    }
    return out;
  }

  close(): void {
    if (!this.fds) return;
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds = null;
  }
}

function byteSwap32(a: Float32Array): void {
  const b = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  for (let i = 0; i < b.length; i += 4) {
    [b[i], b[i + 1], b[i + 2], b[i + 3]] = [b[i + 3], b[i + 2], b[i + 1], b[i]];
  }
}

function byteSwap16(a: Uint16Array): void {
  for (let i = 0; i < a.length; i++) a[i] = ((a[i] & 0xff) << 8) | (a[i] >>> 8);
}

function openFd(file: string, referrer?: string): number {
  try {
    return fs.openSync(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new Error(referrer ? `${referrer}: shard ${file} is missing` : `${file}: not found`);
    }
    throw new Error(`${file}: cannot open (${(e as Error).message})`);
  }
}

function readIndex(indexFile: string): Map<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
  } catch (e) {
    throw new Error(`${indexFile}: cannot read index (${(e as Error).message})`);
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new Error(`${indexFile}: weight_map is missing or not an object`);
  }
  const map = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '' || path.isAbsolute(shard) || shard.split(/[\\/]/).includes('..')) {
      throw new Error(`${indexFile}: weight_map entry for ${name} is not a file name inside the model folder: ${JSON.stringify(shard)}`);
    }
    map.set(name, shard);
  }
  return map;
}

/**
 * Opens `dir/model.safetensors.index.json` (sharded) or else `dir/model.safetensors`, validating every header.
 * Tensor data is read only by readF32. Call close() when done.
 */
export function openCheckpoint(dir: string): Checkpoint {
  const absDir = path.resolve(dir);
  const indexFile = path.join(absDir, INDEX_FILE);
  const singleFile = path.join(absDir, SINGLE_FILE);
  const fds = new Map<string, number>();
  const stored = new Map<string, StoredTensor>();
  try {
    if (fs.existsSync(indexFile)) {
      const weightMap = readIndex(indexFile);
      const shards = [...new Set(weightMap.values())].sort();
      for (const shard of shards) {
        const file = path.join(absDir, shard);
        const fd = openFd(file, indexFile);
        fds.set(file, fd);
        for (const t of readHeader(fd, file).tensors) {
          const prev = stored.get(t.name);
          if (prev) throw new Error(`${file}: tensor ${t.name} is also in ${prev.file}`);
          stored.set(t.name, t);
        }
      }
      for (const [name, shard] of weightMap) {
        const t = stored.get(name);
        const file = path.join(absDir, shard);
        if (!t) throw new Error(`${indexFile}: tensor ${name} is mapped to ${file}, which does not contain it`);
        if (t.file !== file) throw new Error(`${indexFile}: tensor ${name} is mapped to ${file} but found in ${t.file}`);
      }
      return new FileCheckpoint(absDir, fds, stored, indexFile);
    }
    if (!fs.existsSync(singleFile)) {
      throw new Error(`${absDir}: no ${SINGLE_FILE} or ${INDEX_FILE} found`);
    }
    const fd = openFd(singleFile);
    fds.set(singleFile, fd);
    for (const t of readHeader(fd, singleFile).tensors) stored.set(t.name, t);
    return new FileCheckpoint(absDir, fds, stored, singleFile);
  } catch (e) {
    for (const fd of fds.values()) fs.closeSync(fd);
    throw e;
  }
}

/** The `__metadata__` of one .safetensors file (e.g. {format: "pt"}). */
export function readMetadata(file: string): Readonly<Record<string, string>> {
  const fd = openFd(file);
  try {
    return readHeader(fd, file).metadata;
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Writer (fixtures and tests)

export interface TensorToWrite {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** Writes one .safetensors file, converting `data` to each tensor's dtype. Header padded to 8 bytes with spaces. */
export function writeSafetensors(file: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata) header['__metadata__'] = metadata;
  let offset = 0;
  const blobs: Uint8Array[] = [];
  for (const t of tensors) {
    const count = product(t.shape);
    if (t.data.length !== count) {
      throw new Error(`writeSafetensors: tensor ${t.name} has ${t.data.length} values, shape ${fmtShape(t.shape)} needs ${count}`);
    }
    if (t.name in header) throw new Error(`writeSafetensors: duplicate tensor ${t.name}`);
    let bytes: Uint8Array;
    if (t.dtype === 'F32') {
      bytes = Buffer.alloc(count * 4);
      for (let i = 0; i < count; i++) (bytes as Buffer).writeFloatLE(t.data[i], i * 4);
    } else {
      const conv = t.dtype === 'F16' ? f32ToF16Bits : f32ToBF16Bits;
      bytes = Buffer.alloc(count * 2);
      for (let i = 0; i < count; i++) (bytes as Buffer).writeUInt16LE(conv(t.data[i]), i * 2);
    }
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.byteLength] };
    offset += bytes.byteLength;
    blobs.push(bytes);
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(json, 'utf8'), ...blobs]));
}

// ---------------------------------------------------------------------------------------------------------------
// Hugging Face weight names for the llama / qwen2 / mistral decoder layout

export interface LayerTensorNames {
  readonly inputNorm: string;
  readonly qProj: string;
  readonly kProj: string;
  readonly vProj: string;
  readonly oProj: string;
  readonly qBias: string;
  readonly kBias: string;
  readonly vBias: string;
  readonly oBias: string;
  readonly postAttentionNorm: string;
  readonly gateProj: string;
  readonly upProj: string;
  readonly downProj: string;
}

export const tensorNames = Object.freeze({
  embedTokens: 'model.embed_tokens.weight',
  finalNorm: 'model.norm.weight',
  lmHead: 'lm_head.weight',
  layer(i: number): LayerTensorNames {
    const p = `model.layers.${i}`;
    return {
      inputNorm: `${p}.input_layernorm.weight`,
      qProj: `${p}.self_attn.q_proj.weight`,
      kProj: `${p}.self_attn.k_proj.weight`,
      vProj: `${p}.self_attn.v_proj.weight`,
      oProj: `${p}.self_attn.o_proj.weight`,
      qBias: `${p}.self_attn.q_proj.bias`,
      kBias: `${p}.self_attn.k_proj.bias`,
      vBias: `${p}.self_attn.v_proj.bias`,
      oBias: `${p}.self_attn.o_proj.bias`,
      postAttentionNorm: `${p}.post_attention_layernorm.weight`,
      gateProj: `${p}.mlp.gate_proj.weight`,
      upProj: `${p}.mlp.up_proj.weight`,
      downProj: `${p}.mlp.down_proj.weight`,
    };
  },
});

/** Whether o_proj carries a bias: HF Llama with attention_bias biases all four projections; Qwen2 only q/k/v. */
export function hasOutputBias(cfg: ModelConfig): boolean {
  return cfg.family === 'llama' && cfg.attentionBias;
}

export interface ExpectedTensor {
  readonly name: string;
  readonly shape: readonly number[];
}

/** Every tensor the decoder needs, with its stored (out, in) shape. lm_head.weight only when embeddings are untied. */
export function expectedTensors(cfg: ModelConfig): ExpectedTensor[] {
  const { hiddenSize: d, nHeads, nKvHeads, headDim, intermediateSize: ff, vocabSize: v } = cfg;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const out: ExpectedTensor[] = [{ name: tensorNames.embedTokens, shape: [v, d] }];
  for (let i = 0; i < cfg.nLayers; i++) {
    const n = tensorNames.layer(i);
    out.push({ name: n.inputNorm, shape: [d] });
    out.push({ name: n.qProj, shape: [qDim, d] }, { name: n.kProj, shape: [kvDim, d] }, { name: n.vProj, shape: [kvDim, d] });
    if (cfg.attentionBias) {
      out.push({ name: n.qBias, shape: [qDim] }, { name: n.kBias, shape: [kvDim] }, { name: n.vBias, shape: [kvDim] });
    }
    out.push({ name: n.oProj, shape: [d, qDim] });
    if (hasOutputBias(cfg)) out.push({ name: n.oBias, shape: [d] });
    out.push({ name: n.postAttentionNorm, shape: [d] });
    out.push({ name: n.gateProj, shape: [ff, d] }, { name: n.upProj, shape: [ff, d] }, { name: n.downProj, shape: [d, ff] });
  }
  out.push({ name: tensorNames.finalNorm, shape: [d] });
  if (!cfg.tieWordEmbeddings) out.push({ name: tensorNames.lmHead, shape: [v, d] });
  return out.map((t) => Object.freeze({ name: t.name, shape: Object.freeze(t.shape) }));
}

/** Problems with a checkpoint against a config: one line per missing or mis-shaped tensor, naming tensor and file. */
export function checkpointProblems(cfg: ModelConfig, ckpt: Checkpoint): string[] {
  const where = ckpt instanceof FileCheckpoint ? ckpt.sourceFile : ckpt.dir;
  const problems: string[] = [];
  for (const want of expectedTensors(cfg)) {
    const t = ckpt.tensors.get(want.name);
    if (!t) {
      const hint = want.name === tensorNames.lmHead ? ' (config has tie_word_embeddings false)' : '';
      problems.push(`${where}: missing tensor ${want.name} ${fmtShape(want.shape)}${hint}`);
    } else if (t.shape.length !== want.shape.length || t.shape.some((x, i) => x !== want.shape[i])) {
      problems.push(`${t.file}: tensor ${want.name} has shape ${fmtShape(t.shape)}, expected ${fmtShape(want.shape)}`);
    }
  }
  return problems;
}

/** Throws one error listing every missing or mis-shaped tensor. */
export function validateCheckpoint(cfg: ModelConfig, ckpt: Checkpoint): void {
  const problems = checkpointProblems(cfg, ckpt);
  if (problems.length > 0) {
    throw new Error(
      `checkpoint does not match config (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  ${problems.join('\n  ')}`,
    );
  }
}
