// The persisted KV block store: content-addressed blocks of consecutive prompt tokens, one file per block.
//
// Keys form a hash chain: h_{-1} = sha256(fingerprint), h_i = sha256(h_{i-1} ‖ ids of block i as int32 LE), so a
// block's key names the whole prefix up to and including it (the KV of a token depends only on the tokens before it).
//
// On disk: <dir>/<fingerprint[0:16]>/<hash[0:2]>/<hash>.kv, published by rename of a fsynced temp file in the same
// directory, so a reader (in this or another process) sees either nothing or a complete file. Every read is checked
// (magic, version, size, CRC-32 trailer, fingerprint, own hash, geometry, positions, token ids); a bad entry is reported,
// removed and treated as absent. Write failures that will not go away (disk full, read-only, no permission) turn
// caching off for the session with one warning; answers keep working without the cache.
//
// File layout (all little-endian, fixed offsets):
//   0   magic 'ATTNKVB\0' (8 bytes)
//   8   u32 format version (KV_FORMAT_VERSION)
//   12  u32 header bytes (= 168, where the token ids start)
//   16  fingerprint, 64 ASCII hex chars
//   80  block hash (the file's own key), 64 ASCII hex chars
//   144 u32 dtype (1 = f32)
//   148 u32 nLayers, 152 u32 nKvHeads, 156 u32 headDim, 160 u32 block length (tokens),
//   164 u32 R = representative keys per layer and KV head (min(summaryKeys, len))
//   168 i32[len] token ids, then i32[len] absolute positions
//   summary, per layer l: i32 (nKvHeads, R) offsets in the block, f32 (nKvHeads, R, headDim) keys (block-summary.ts)
//   u32 CRC-32 of every byte before it (so readSummary checks what it reads without reading the rest)
//   then per layer l: K[l] f32 (nKvHeads, len, headDim)
//   u32 CRC-32 of every byte before it (so readKeys checks what it reads without reading the values)
//   then per layer l: V[l] f32 (nKvHeads, len, headDim)
//   last 4 bytes: u32 CRC-32 of every byte before it
// (CRC-32 as zlib's, format 4 on. Formats 1-3 had sha256 there: checking it was ~9 ms of a ~55 ms warm 32k-token ask
// on the built-in model, CRC-32 a third of that, and corruption, not an adversary, is what the checksum is for.)
//
// A context's tail (the tokens after its last stored block, see Prefiller.run) is an entry of the same layout under
// tailHash. Block memory's summary table of a run of blocks (<key>.kvs, key = summaryTableKey(last block's key)) puts
// every block's representative keys in one file, so a question ranks all stored blocks with one read:
//   0-143 as above with magic 'ATTNKVS\0' and SUMMARY_TABLE_VERSION, header bytes 176; 144 u32 dtype, 148 nLayers,
//   152 nKvHeads, 156 headDim, 160 block length, 164 R, 168 u32 blocks, 172 u32 0
//   176 i32[blocks * block length] token ids
//   per layer l: f32 (nKvHeads, blocks * R, headDim), block i at rows i * R .. (i + 1) * R of every head
//   last 4 bytes: u32 CRC-32 of every byte before it
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import * as zlib from 'node:zlib';
import { DEFAULT_SUMMARY_KEYS, representativeKeys, type BlockSummary, type LayerSummary } from './block-summary';

/** Version of the block file layout; a file with another version is treated as foreign (removed, recomputed). */
export const KV_FORMAT_VERSION = 4;
/**
 * Version of everything that shapes the numbers inside a block besides the model files and settings: the ONNX graph
 * (op set, fused QKV layout, RoPE implementation) and the runtime's KV layout. Bump it when those change so old caches
 * stop matching; it is hashed into the model fingerprint.
 * 2: sinks' rotary positions shift past the trained sink distance. 3: the blocks of a context's last, partial chunk are
 * no longer stored under block keys (their numbers depend on where the context ends; see Prefiller.run) and the chunk
 * size is part of the fingerprint's settings.
 */
export const ENGINE_FORMAT_VERSION = 3;
/** Version of the summary table layout (see readSummaryTable); another version is treated as foreign. */
export const SUMMARY_TABLE_VERSION = 2;
/** Default number of tokens per block. */
export const DEFAULT_BLOCK_TOKENS = 128;

const MAGIC = Buffer.from('ATTNKVB\0', 'latin1');
const TABLE_MAGIC = Buffer.from('ATTNKVS\0', 'latin1');
const HEADER_BYTES = 168;
/** Bytes of a checksum (a CRC-32). */
export const TRAILER_BYTES = 4;
/** A summary table's header: the block header's fields up to 168, then u32 blocks and 4 reserved bytes (zero). */
const TABLE_HEADER_BYTES = 176;

/** CRC-32 (zlib's: polynomial 0xEDB88320, reflected) of `data`, continuing from `prev` (the CRC of the bytes before). */
export const crc32: (data: Uint8Array, prev?: number) => number =
  typeof (zlib as { crc32?: unknown }).crc32 === 'function'
    ? (data, prev = 0) => (zlib as unknown as { crc32(d: Uint8Array, v: number): number }).crc32(data, prev)
    : crc32Table;

let crcTable: Uint32Array | null = null;
/** CRC-32 by table, for Node versions before zlib.crc32 (20.15 / 22.2). */
export function crc32Table(data: Uint8Array, prev = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = ~prev >>> 0;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * Writes at `end` the checksum of buf[0, end), computed as the CRC of buf[from, end) continued from `prev` (the CRC of
 * buf[0, from), which the caller has from the previous seal), and returns it to continue from.
 */
function sealAt(buf: Buffer, end: number, from = 0, prev = 0): number {
  const sum = crc32(buf.subarray(from, end), prev);
  buf.writeUInt32LE(sum, end);
  return sum;
}

/** Whether the checksum stored in buf[end - TRAILER_BYTES, end) is that of every byte before it. */
function sealed(buf: Buffer, end: number): boolean {
  return crc32(buf.subarray(0, end - TRAILER_BYTES)) === buf.readUInt32LE(end - TRAILER_BYTES);
}
const DTYPE_F32 = 1;
const HEX64 = /^[0-9a-f]{64}$/;
const MODEL_DIR_RE = /^[0-9a-f]{16}$/;
const SHARD_DIR_RE = /^[0-9a-f]{2}$/;
const ENTRY_RE = /^[0-9a-f]{64}\.kvs?$/;
/** A model folder's document encodings (encoding-cache.ts): counted against the budget and evicted like entries. */
export const ENCODINGS_DIR = 'encodings';
const ENCODING_RE = /^[0-9a-f]{64}\.enc$/;
const TEMP_RE = /^\.[0-9a-f]{64}\.\d+\.[0-9a-f]+\.tmp$/;
/** Temp files older than this are leftovers of a crashed writer and are removed by scans. */
const STALE_TEMP_MS = 60 * 60 * 1000;
/** Re-read the real store size after this many writes (other processes write too). */
const RESCAN_EVERY = 64;
/** Errors after which writing is pointless for the rest of the session. */
const PERSISTENT_WRITE_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EACCES', 'EPERM', 'ENOTDIR', 'EEXIST', 'EISDIR', 'EFBIG']);
export const LITTLE_ENDIAN = os.endianness() === 'LE';

export interface KvBlock {
  readonly tokenIds: Int32Array; // (len)
  readonly positions: Int32Array; // (len) absolute positions, consecutive
  readonly keys: readonly Float32Array[]; // per layer, (nKvHeads, len, headDim)
  readonly values: readonly Float32Array[];
}

/** A stored block without its values (KvBlockStore.readKeys). */
export type KvKeys = Omit<KvBlock, 'values'>;

export interface KvGeometry {
  readonly nLayers: number;
  readonly nKvHeads: number;
  readonly headDim: number;
}

export interface KvStoreOptions {
  /** Disk budget for the whole store directory (every model's blocks); LRU entries are evicted past it. */
  readonly maxBytes: number;
  readonly geometry: KvGeometry;
  /** 64 lowercase hex digits, from modelFingerprint(). */
  readonly fingerprint: string;
  /** Receives every problem (bad entry, write failure); default: console.warn. */
  readonly warn?: (msg: string) => void;
  /** Eviction stops once the store is at or below lowWater * maxBytes (default 0.9, so scans are not per write). */
  readonly lowWater?: number;
  /** Representative keys per layer and KV head written with each block (default DEFAULT_SUMMARY_KEYS). */
  readonly summaryKeys?: number;
}

export interface KvStoreStats {
  readonly entries: number;
  readonly bytes: number;
}

function isHex64(s: unknown): s is string {
  return typeof s === 'string' && HEX64.test(s);
}

function errCode(e: unknown): string {
  const c = (e as NodeJS.ErrnoException | null)?.code;
  return typeof c === 'string' ? c : 'EUNKNOWN';
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** 'CODE: message' without repeating the code node already puts at the front of the message. */
function describe(e: unknown): string {
  const code = errCode(e);
  const msg = errText(e);
  return msg.startsWith(`${code}:`) ? msg : `${code}: ${msg}`;
}

function int32Bytes(ids: ArrayLike<number>, what: string): Buffer {
  const out = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const v = ids[i];
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
      throw new RangeError(`${what}: token id at index ${i} is ${v}, not a 32-bit integer`);
    }
    out[i] = v;
  }
  const buf = Buffer.from(out.buffer, out.byteOffset, out.byteLength);
  if (!LITTLE_ENDIAN) for (let i = 0; i < out.length; i++) buf.writeInt32LE(out[i], i * 4);
  return buf;
}

/** h_{-1}: the chain's start for one model fingerprint (hex). */
export function rootHash(fingerprint: string): string {
  return createHash('sha256').update(fingerprint, 'utf8').digest('hex');
}

/** h_i = sha256(h_{i-1} as 32 raw bytes ‖ ids as int32 LE) (hex). */
export function chainHash(prev: string, ids: ArrayLike<number>): string {
  if (!isHex64(prev)) throw new TypeError(`chainHash: previous hash must be 64 lowercase hex digits, got ${JSON.stringify(prev)}`);
  return createHash('sha256').update(Buffer.from(prev, 'hex')).update(int32Bytes(ids, 'chainHash')).digest('hex');
}

/**
 * Key of a context's tail entry: the tokens `ids` after the block whose key is `prev` (rootHash for none), up to the
 * end of the context. Domain-separated from chainHash, because the tail's numbers depend on where the context ends:
 * a block with the same tokens inside a longer context is computed differently and must not share its key.
 */
export function tailHash(prev: string, ids: ArrayLike<number>): string {
  if (!isHex64(prev)) throw new TypeError(`tailHash: previous hash must be 64 lowercase hex digits, got ${JSON.stringify(prev)}`);
  return createHash('sha256')
    .update('attend-context-tail\0')
    .update(Buffer.from(prev, 'hex'))
    .update(int32Bytes(ids, 'tailHash'))
    .digest('hex');
}

/** Key of the summary table of the blocks up to and including the one whose key is `lastBlock`. */
export function summaryTableKey(lastBlock: string): string {
  if (!isHex64(lastBlock))
    throw new TypeError(`summaryTableKey: block key must be 64 lowercase hex digits, got ${JSON.stringify(lastBlock)}`);
  return createHash('sha256').update('attend-summary-table\0').update(Buffer.from(lastBlock, 'hex')).digest('hex');
}

/**
 * The representative keys (block-summary.ts) of a run of equal-sized blocks, laid out for BlockScorer.scoreTable: per
 * layer (nKvHeads, blocks * count, headDim), block i's keys at rows i * count .. (i + 1) * count of every head.
 */
export interface SummaryTable {
  readonly blocks: number;
  readonly blockTokens: number;
  /** Representative keys per block and KV head. */
  readonly count: number;
  readonly keys: readonly Float32Array[];
}

/**
 * Keys of the blocks of `ids` split every `blockTokens` tokens: element i names ids[0 .. (i+1)*blockTokens).
 * A trailing partial block gets a key only with `includePartial`.
 */
export function blockHashes(
  fingerprint: string,
  ids: ArrayLike<number>,
  blockTokens = DEFAULT_BLOCK_TOKENS,
  includePartial = false,
): string[] {
  if (!Number.isInteger(blockTokens) || blockTokens <= 0)
    throw new RangeError(`blockHashes: block size ${blockTokens} is not a positive integer`);
  const out: string[] = [];
  let h = rootHash(fingerprint);
  for (let start = 0; start < ids.length; start += blockTokens) {
    const end = Math.min(start + blockTokens, ids.length);
    if (end - start < blockTokens && !includePartial) break;
    const slice = Array.prototype.slice.call(ids, start, end) as number[];
    h = chainHash(h, slice);
    out.push(h);
  }
  return out;
}

/** `$XDG_CACHE_HOME/attend`, else `~/.cache/attend` (the CLI's store; the extension passes its globalStorage path). */
export function defaultCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'attend');
  return path.join(os.homedir(), '.cache', 'attend');
}

// ---------------------------------------------------------------------------------------------------------------
// Model fingerprint

/** JSON with object keys sorted at every level; rejects values JSON cannot carry faithfully. */
export function canonicalJson(value: unknown): string {
  const enc = (v: unknown, at: string): string => {
    if (v === null) return 'null';
    switch (typeof v) {
      case 'boolean':
        return v ? 'true' : 'false';
      case 'string':
        return JSON.stringify(v);
      case 'number':
        if (!Number.isFinite(v)) throw new TypeError(`canonicalJson: ${at} is ${v}, not a finite number`);
        return JSON.stringify(v);
      case 'object': {
        if (Array.isArray(v)) return `[${v.map((x, i) => enc(x === undefined ? null : x, `${at}[${i}]`)).join(',')}]`;
        const o = v as Record<string, unknown>;
        const keys = Object.keys(o)
          .filter((k) => o[k] !== undefined)
          .sort();
        return `{${keys.map((k) => `${JSON.stringify(k)}:${enc(o[k], `${at}.${k}`)}`).join(',')}}`;
      }
      default:
        throw new TypeError(`canonicalJson: ${at} has type ${typeof v}`);
    }
  };
  return enc(value, 'settings');
}

interface DigestEntry {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  sha256: string;
  usedAt: number;
}

const DIGEST_CACHE_FILE = 'weights-digest.json';
const DIGEST_CACHE_MAX = 256;
const memoDigests = new Map<string, DigestEntry>();

function sameStat(e: DigestEntry, st: fs.Stats): boolean {
  return e.size === st.size && e.mtimeMs === st.mtimeMs && e.ctimeMs === st.ctimeMs && e.ino === st.ino;
}

function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const chunk = Buffer.allocUnsafe(4 << 20);
    for (;;) {
      const n = fs.readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      h.update(chunk.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

function loadDigestCache(file: string): Record<string, DigestEntry> {
  try {
    const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: unknown; entries?: unknown };
    if (parsed.version === 1 && parsed.entries && typeof parsed.entries === 'object') return parsed.entries as Record<string, DigestEntry>;
  } catch {
    // absent or unreadable: start empty
  }
  return {};
}

function saveDigestCache(file: string, entries: Record<string, DigestEntry>): void {
  const names = Object.keys(entries).sort((a, b) => entries[b].usedAt - entries[a].usedAt);
  const kept: Record<string, DigestEntry> = {};
  for (const n of names.slice(0, DIGEST_CACHE_MAX)) kept[n] = entries[n];
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(tmp, JSON.stringify({ version: 1, entries: kept }));
    fs.renameSync(tmp, file);
  } catch {
    // the digest cache is an optimisation only
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* not there */
    }
  }
}

function hashField(h: ReturnType<typeof createHash>, name: string, data: Buffer | string): void {
  const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  h.update(`${name}\0${b.length}\0`, 'utf8');
  h.update(b);
}

/**
 * sha256 (hex) identifying everything a block's numbers depend on: ENGINE_FORMAT_VERSION, KV_FORMAT_VERSION,
 * config.json and tokenizer.json bytes, every *.safetensors file's bytes (by its streamed sha256), and `settings`
 * (window, sinks, block size, dtype, ...) canonically serialised. Weight digests are cached in
 * `<digestCacheDir>/weights-digest.json` keyed by path + size + mtimeMs (+ ctimeMs and inode), and in memory for the
 * process; without `digestCacheDir` only the in-memory cache is used. Throws (naming the file) if config.json is
 * missing or a file cannot be read.
 */
export function modelFingerprint(modelDir: string, settings: Record<string, unknown>, digestCacheDir?: string): string {
  const dir = path.resolve(modelDir);
  const h = createHash('sha256');
  hashField(h, 'attend-model-fingerprint', `${ENGINE_FORMAT_VERSION}/${KV_FORMAT_VERSION}`);

  const configPath = path.join(dir, 'config.json');
  let config: Buffer;
  try {
    config = fs.readFileSync(configPath);
  } catch (e) {
    throw new Error(`${configPath}: cannot read the model config (${describe(e)})`);
  }
  hashField(h, 'config.json', config);

  const tokPath = path.join(dir, 'tokenizer.json');
  let tok: Buffer | null = null;
  try {
    tok = fs.readFileSync(tokPath);
  } catch (e) {
    if (errCode(e) !== 'ENOENT') throw new Error(`${tokPath}: cannot read the tokenizer (${describe(e)})`);
  }
  if (tok) hashField(h, 'tokenizer.json', tok);
  else hashField(h, 'tokenizer.json:absent', '');

  const shards = fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.safetensors'))
    .sort();
  const cacheFile = digestCacheDir ? path.join(path.resolve(digestCacheDir), DIGEST_CACHE_FILE) : null;
  const onDisk = cacheFile ? loadDigestCache(cacheFile) : {};
  let dirty = false;
  for (const name of shards) {
    const file = path.join(dir, name);
    let digest: string;
    try {
      const st = fs.statSync(file);
      const cached = memoDigests.get(file) ?? onDisk[file];
      if (cached && typeof cached.sha256 === 'string' && sameStat(cached, st)) {
        digest = cached.sha256;
      } else {
        digest = sha256File(file);
        const after = fs.statSync(file);
        const entry: DigestEntry = {
          size: st.size,
          mtimeMs: st.mtimeMs,
          ctimeMs: st.ctimeMs,
          ino: st.ino,
          sha256: digest,
          usedAt: Date.now(),
        };
        // Only remember a digest if the file did not change while it was hashed.
        if (sameStat(entry, after)) {
          memoDigests.set(file, entry);
          onDisk[file] = entry;
          dirty = true;
        }
      }
      if (onDisk[file] && Date.now() - onDisk[file].usedAt > 24 * 3600 * 1000) {
        onDisk[file] = { ...onDisk[file], usedAt: Date.now() };
        dirty = true;
      }
    } catch (e) {
      throw new Error(`${file}: cannot hash the weights (${describe(e)})`);
    }
    hashField(h, `weights:${name}`, digest);
  }
  if (cacheFile && dirty) saveDigestCache(cacheFile, onDisk);

  hashField(h, 'settings', canonicalJson(settings));
  return h.digest('hex');
}

// ---------------------------------------------------------------------------------------------------------------
// Byte helpers (little-endian on disk whatever the host)

function putF32(buf: Buffer, off: number, src: Float32Array): void {
  if (LITTLE_ENDIAN) buf.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), off);
  else for (let i = 0; i < src.length; i++) buf.writeFloatLE(src[i], off + 4 * i);
}

function putI32(buf: Buffer, off: number, src: Int32Array): void {
  if (LITTLE_ENDIAN) buf.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength), off);
  else for (let i = 0; i < src.length; i++) buf.writeInt32LE(src[i], off + 4 * i);
}

function getF32(buf: Buffer, off: number, n: number): Float32Array {
  const out = new Float32Array(n);
  if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(buf.subarray(off, off + 4 * n));
  else for (let i = 0; i < n; i++) out[i] = buf.readFloatLE(off + 4 * i);
  return out;
}

/**
 * `n` floats at `off` without a copy where the platform and the alignment allow (the array then shares `buf`'s memory,
 * which the caller owns: a buffer read for this entry alone), else a copy.
 */
function viewF32(buf: Buffer, off: number, n: number): Float32Array {
  if (LITTLE_ENDIAN && (buf.byteOffset + off) % 4 === 0) return new Float32Array(buf.buffer, buf.byteOffset + off, n);
  return getF32(buf, off, n);
}

function getI32(buf: Buffer, off: number, n: number): Int32Array {
  const out = new Int32Array(n);
  if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(buf.subarray(off, off + 4 * n));
  else for (let i = 0; i < n; i++) out[i] = buf.readInt32LE(off + 4 * i);
  return out;
}

/** Bytes from the start of a block file to the end of its summary checksum (what readSummary reads). */
function summaryEnd(geometry: KvGeometry, len: number, summaryKeys: number): number {
  const r = Math.min(summaryKeys, len);
  return HEADER_BYTES + 8 * len + geometry.nLayers * geometry.nKvHeads * r * (1 + geometry.headDim) * 4 + TRAILER_BYTES;
}

/** Bytes from the start of a block file to the end of its keys' checksum (what readKeys reads). */
function keysEnd(geometry: KvGeometry, len: number, summaryKeys: number): number {
  return summaryEnd(geometry, len, summaryKeys) + geometry.nLayers * geometry.nKvHeads * len * geometry.headDim * 4 + TRAILER_BYTES;
}

/** Total file size of a block of `len` tokens. */
export function blockFileBytes(geometry: KvGeometry, len: number, summaryKeys = DEFAULT_SUMMARY_KEYS): number {
  return keysEnd(geometry, len, summaryKeys) + geometry.nLayers * geometry.nKvHeads * len * geometry.headDim * 4 + TRAILER_BYTES;
}

/** Total file size of a summary table of `blocks` blocks. */
function tableFileBytes(geometry: KvGeometry, blocks: number, blockTokens: number, count: number): number {
  const { nLayers, nKvHeads, headDim } = geometry;
  return TABLE_HEADER_BYTES + 4 * blocks * blockTokens + 4 * nLayers * nKvHeads * blocks * count * headDim + TRAILER_BYTES;
}

/** Reads `size` bytes from file offset `at` (fewer at end of file). */
function readWhole(fd: number, size: number, at = 0): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let off = 0;
  while (off < size) {
    const n = fs.readSync(fd, buf, off, size - off, at + off);
    if (n === 0) break;
    off += n;
  }
  return off === size ? buf : buf.subarray(0, off);
}

function writeWhole(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
}

/**
 * Node's recursive mkdir reports ENOENT when the real failure is a parent that cannot be written (a read-only file
 * system gives ENOENT, not EROFS), which would read as a passing problem. Create the first missing level on its own
 * to get the real error (EROFS, EACCES, ...); if that works, the original error stands.
 */
function realMkdirError(dir: string, e: unknown): unknown {
  if (errCode(e) !== 'ENOENT') return e;
  let missing = dir;
  for (let parent = path.dirname(missing); parent !== missing && !fs.existsSync(parent); parent = path.dirname(parent)) missing = parent;
  try {
    fs.mkdirSync(missing);
  } catch (real) {
    return real;
  }
  return e;
}

interface ScanEntry {
  readonly file: string;
  readonly size: number;
  readonly mtimeMs: number;
}

function readdirOrEmpty(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------------------------------------------

export class KvBlockStore {
  /** Root of the store (shared by every model). */
  readonly dir: string;
  /** This model's subdirectory: <dir>/<fingerprint[0:16]>. */
  readonly modelDir: string;
  readonly geometry: KvGeometry;
  readonly fingerprint: string;
  readonly maxBytes: number;
  private readonly lowWater: number;
  private readonly warnFn: (msg: string) => void;
  private disabledBy: string | null = null;
  private readonly warnedCodes = new Set<string>();
  private approxBytes: number | null = null;
  private writesSinceScan = 0;
  private clock = 0;
  private readonly summaryKeys: number;

  constructor(dir: string, opts: KvStoreOptions) {
    if (!isHex64(opts.fingerprint))
      throw new TypeError(`KvBlockStore: fingerprint must be 64 lowercase hex digits, got ${JSON.stringify(opts.fingerprint)}`);
    const g = opts.geometry;
    for (const k of ['nLayers', 'nKvHeads', 'headDim'] as const) {
      if (!Number.isInteger(g[k]) || g[k] <= 0 || g[k] > 0xffffffff)
        throw new RangeError(`KvBlockStore: geometry.${k} is ${g[k]}, not a positive integer`);
    }
    if (!(opts.maxBytes >= 0)) throw new RangeError(`KvBlockStore: maxBytes is ${opts.maxBytes}`);
    const sk = opts.summaryKeys ?? DEFAULT_SUMMARY_KEYS;
    if (!Number.isInteger(sk) || sk < 1 || sk > 0xffff)
      throw new RangeError(`KvBlockStore: summaryKeys is ${sk}, not an integer in 1..65535`);
    this.summaryKeys = sk;
    const lw = opts.lowWater ?? 0.9;
    if (!(lw > 0 && lw <= 1)) throw new RangeError(`KvBlockStore: lowWater ${lw} is not in (0, 1]`);
    this.dir = path.resolve(dir);
    this.fingerprint = opts.fingerprint;
    this.modelDir = path.join(this.dir, opts.fingerprint.slice(0, 16));
    this.geometry = { nLayers: g.nLayers, nKvHeads: g.nKvHeads, headDim: g.headDim };
    this.maxBytes = opts.maxBytes;
    this.lowWater = lw;
    this.warnFn = opts.warn ?? ((m) => console.warn(m));
  }

  /** Why writing was turned off for this session (an errno code), or null while the store writes. */
  get readOnlyReason(): string | null {
    return this.disabledBy;
  }

  /** The entry's path. Throws on a key that is not 64 lowercase hex digits (so no key can leave the directory). */
  pathFor(hash: string): string {
    if (!isHex64(hash)) throw new TypeError(`KV block key must be 64 lowercase hex digits, got ${JSON.stringify(hash)}`);
    return path.join(this.modelDir, hash.slice(0, 2), `${hash}.kv`);
  }

  /** A summary table's path (see pathFor). */
  tablePathFor(key: string): string {
    if (!isHex64(key)) throw new TypeError(`KV summary table key must be 64 lowercase hex digits, got ${JSON.stringify(key)}`);
    return path.join(this.modelDir, key.slice(0, 2), `${key}.kvs`);
  }

  has(hash: string): boolean {
    if (!isHex64(hash)) return false;
    try {
      return fs.statSync(this.pathFor(hash)).isFile();
    } catch {
      return false;
    }
  }

  /**
   * The block stored under `hash`, or null when absent. A bad entry (truncated, corrupt, foreign version, another
   * model's, another geometry, other token ids) is reported through `warn`, removed, and read as absent. Never throws.
   */
  read(hash: string, expectIds: ArrayLike<number>): KvBlock | null {
    if (!isHex64(hash)) {
      this.warn(`Attend KV cache: refused to read block key ${JSON.stringify(String(hash)).slice(0, 100)}: not 64 lowercase hex digits`);
      return null;
    }
    return this.readChecked(this.pathFor(hash), (fd, size) => this.decode(readWhole(fd, size), hash, expectIds));
  }

  /**
   * The keys of the block stored under `hash`, reading the file only up to the keys' own checksum (half of it: block
   * memory ranks its shortlist by keys alone). Bad entries are handled as in read(). Touches the entry's LRU time.
   */
  readKeys(hash: string, expectIds: ArrayLike<number>): KvKeys | null {
    if (!isHex64(hash)) {
      this.warn(`Attend KV cache: refused to read block key ${JSON.stringify(String(hash)).slice(0, 100)}: not 64 lowercase hex digits`);
      return null;
    }
    return this.readChecked(this.pathFor(hash), (fd, size) => this.decodeKeys(fd, size, hash, expectIds));
  }

  /**
   * The representative keys of the block stored under `hash` (block-summary.ts), reading only the file's header, token
   * ids and summary, which carry their own checksum. Bad entries are handled as in read(). Does not touch the entry's
   * LRU time: scoring every stored block must not make all of them recent.
   */
  readSummary(hash: string, expectIds: ArrayLike<number>): BlockSummary | null {
    if (!isHex64(hash)) {
      this.warn(`Attend KV cache: refused to read block key ${JSON.stringify(String(hash)).slice(0, 100)}: not 64 lowercase hex digits`);
      return null;
    }
    return this.readChecked(this.pathFor(hash), (fd, size) => this.decodeSummary(fd, size, hash, expectIds), false);
  }

  /**
   * The summary table stored under `key` (summaryTableKey): the representative keys of a run of blocks in one file, so
   * block memory ranks every stored block with one read instead of one per block. `expectIds` are the tokens of all of
   * its blocks. Bad entries are handled as in read(). Never throws.
   */
  readSummaryTable(key: string, expectIds: ArrayLike<number>): SummaryTable | null {
    if (!isHex64(key)) {
      this.warn(
        `Attend KV cache: refused to read summary table key ${JSON.stringify(String(key)).slice(0, 100)}: not 64 lowercase hex digits`,
      );
      return null;
    }
    return this.readChecked(this.tablePathFor(key), (fd, size) => this.decodeTable(readWhole(fd, size), key, expectIds));
  }

  /**
   * Stores the summary table of blocks whose tokens are `ids` under `key`, atomically like write(). An existing
   * complete entry is left alone. Returns false when nothing was stored.
   */
  writeSummaryTable(key: string, ids: ArrayLike<number>, table: SummaryTable): boolean {
    const file = this.tablePathFor(key);
    const g = this.geometry;
    const { blocks, blockTokens, count } = table;
    if (!(blocks > 0 && blockTokens > 0 && count > 0 && count <= blockTokens) || ids.length !== blocks * blockTokens)
      throw new RangeError(
        `KvBlockStore.writeSummaryTable: ${blocks} blocks of ${blockTokens} tokens, ${count} keys each, for ${ids.length} token ids`,
      );
    const per = g.nKvHeads * blocks * count * g.headDim;
    if (table.keys.length !== g.nLayers || table.keys.some((k) => k.length !== per))
      throw new RangeError(
        `KvBlockStore.writeSummaryTable: keys do not match ${g.nLayers} layers of ${g.nKvHeads}x${blocks * count}x${g.headDim}`,
      );
    if (this.disabledBy !== null) return false;
    const size = tableFileBytes(g, blocks, blockTokens, count);
    if (this.complete(file, size)) return true;
    const buf = Buffer.allocUnsafe(size);
    TABLE_MAGIC.copy(buf, 0);
    buf.writeUInt32LE(SUMMARY_TABLE_VERSION, 8);
    buf.writeUInt32LE(TABLE_HEADER_BYTES, 12);
    buf.write(this.fingerprint, 16, 'latin1');
    buf.write(key, 80, 'latin1');
    [DTYPE_F32, g.nLayers, g.nKvHeads, g.headDim, blockTokens, count, blocks, 0].forEach((v, i) => buf.writeUInt32LE(v, 144 + 4 * i));
    putI32(buf, TABLE_HEADER_BYTES, Int32Array.from(ids));
    let off = TABLE_HEADER_BYTES + 4 * ids.length;
    for (const k of table.keys) {
      putF32(buf, off, k);
      off += k.byteLength;
    }
    sealAt(buf, off);
    return this.publish(file, key, buf);
  }

  /** Opens the entry, lets `decode` read it, discards it when decode reports a problem. Never throws. */
  private readChecked<T>(file: string, decode: (fd: number, size: number) => T | string, touch = true): T | null {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      const code = errCode(e);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') this.warn(`Attend KV cache: ${file}: cannot open (${describe(e)}); treated as absent`);
      return null;
    }
    let st: fs.Stats;
    let decoded: T | string;
    try {
      st = fs.fstatSync(fd);
      if (!st.isFile()) {
        this.warn(`Attend KV cache: ${file}: not a regular file; treated as absent`);
        return null;
      }
      try {
        decoded = decode(fd, st.size);
      } catch (e) {
        if (typeof (e as NodeJS.ErrnoException | null)?.code === 'string') throw e; // an I/O error: not the file's fault
        decoded = `unreadable (${errText(e)})`;
      }
    } catch (e) {
      this.warn(`Attend KV cache: ${file}: cannot read (${describe(e)}); treated as absent`);
      return null;
    } finally {
      try {
        fs.closeSync(fd);
      } catch {
        /* already closed */
      }
    }
    if (typeof decoded === 'string') {
      this.discard(file, st, decoded);
      return null;
    }
    if (touch) this.touch(file);
    return decoded;
  }

  /**
   * Stores `block` under `hash` (atomic: temp file in the same directory, fsync, rename). An existing complete entry is
   * left alone. Returns false when nothing was stored: after ENOSPC/EROFS/EACCES and the like, the store warns once and
   * stops writing for the session. Throws only on a block that does not fit the store's geometry or a malformed key.
   */
  write(hash: string, block: KvBlock): boolean {
    const file = this.pathFor(hash);
    const len = this.checkBlock(block);
    if (this.disabledBy !== null) return false;
    if (this.complete(file, blockFileBytes(this.geometry, len, this.summaryKeys))) {
      this.touch(file);
      return true;
    }
    return this.publish(file, hash, this.encode(hash, block, len));
  }

  /** Whether `file` is already there with the size a complete entry has (published entries are never partial). */
  private complete(file: string, size: number): boolean {
    try {
      const st = fs.statSync(file);
      return st.isFile() && st.size === size;
    } catch {
      return false; // absent (or unreadable): write it
    }
  }

  /** Writes `buf` to `file` atomically: a temp file in the same directory, fsync, rename. */
  private publish(file: string, hash: string, buf: Buffer): boolean {
    const size = buf.length;
    const sub = path.dirname(file);
    const tmp = path.join(sub, `.${hash}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    let fd: number | null = null;
    let stage = 'create directory';
    try {
      fs.mkdirSync(sub, { recursive: true });
      stage = 'create temp file';
      fd = fs.openSync(tmp, 'wx', 0o644);
      stage = 'write';
      writeWhole(fd, buf);
      const t = this.tick() / 1000;
      fs.futimesSync(fd, t, t);
      stage = 'fsync';
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fd = null;
      stage = 'publish (rename)';
      fs.renameSync(tmp, file);
    } catch (caught) {
      const e = stage === 'create directory' ? realMkdirError(sub, caught) : caught;
      if (fd !== null) {
        try {
          fs.closeSync(fd);
        } catch {
          /* ignore */
        }
      }
      try {
        fs.unlinkSync(tmp);
      } catch {
        /* never created or already gone */
      }
      // A concurrent writer of the same block may have won the rename (Windows refuses to replace an open file).
      if (stage.startsWith('publish')) {
        try {
          if (fs.statSync(file).size === size) return true;
        } catch {
          /* not there */
        }
      }
      return this.writeFailed(file, stage, e);
    }
    this.afterWrite(size);
    return true;
  }

  /** Entries and bytes of the whole store (every model), as counted against maxBytes. */
  stats(): KvStoreStats {
    const all = this.scan();
    let bytes = 0;
    for (const e of all) bytes += e.size;
    this.approxBytes = bytes;
    this.writesSinceScan = 0;
    return { entries: all.length, bytes };
  }

  /**
   * Removes cached blocks: every model's (default) or only this model's. Only files the store itself names are deleted
   * (entries, stale temp files, then the emptied subdirectories); anything else under `dir` is left alone.
   */
  clear(scope: 'all' | 'model' = 'all'): void {
    const only = scope === 'model' ? path.basename(this.modelDir) : null;
    for (const e of this.scan(only)) {
      try {
        fs.unlinkSync(e.file);
      } catch {
        /* vanished or not removable */
      }
    }
    for (const m of readdirOrEmpty(this.dir)) {
      if (!MODEL_DIR_RE.test(m) || (only !== null && m !== only)) continue;
      const md = path.join(this.dir, m);
      for (const s of readdirOrEmpty(md)) {
        if (SHARD_DIR_RE.test(s) || s === ENCODINGS_DIR) this.tryRmdir(path.join(md, s));
      }
      this.tryRmdir(md);
    }
    this.approxBytes = null;
  }

  // -------------------------------------------------------------------------------------------------------------

  private tryRmdir(d: string): void {
    try {
      fs.rmdirSync(d);
    } catch {
      /* not empty (a concurrent writer) or gone */
    }
  }

  private warn(msg: string): void {
    try {
      this.warnFn(msg);
    } catch {
      /* a throwing logger must not break the store */
    }
  }

  /** Strictly increasing wall-clock milliseconds, so LRU order within a process is exact. */
  private tick(): number {
    this.clock = Math.max(Date.now(), this.clock + 0.01);
    return this.clock;
  }

  private touch(file: string): void {
    const t = this.tick() / 1000;
    try {
      fs.utimesSync(file, t, t);
    } catch {
      /* evicted meanwhile, or a read-only store: LRU order is best-effort */
    }
  }

  private writeFailed(file: string, stage: string, e: unknown): false {
    const code = errCode(e);
    if (PERSISTENT_WRITE_ERRORS.has(code)) {
      this.disabledBy = code;
      this.warn(
        `Attend KV cache: cannot ${stage} for ${file} (${describe(e)}); caching to disk is off for this session, answers continue without it`,
      );
    } else if (!this.warnedCodes.has(code)) {
      this.warnedCodes.add(code);
      this.warn(`Attend KV cache: cannot ${stage} for ${file} (${describe(e)}); block not cached`);
    }
    return false;
  }

  private checkBlock(block: KvBlock): number {
    const { nLayers, nKvHeads, headDim } = this.geometry;
    const len = block.tokenIds?.length;
    if (!(block.tokenIds instanceof Int32Array) || !(block.positions instanceof Int32Array)) {
      throw new TypeError('KvBlockStore.write: tokenIds and positions must be Int32Array');
    }
    if (len === 0 || len > 0xffffffff) throw new RangeError(`KvBlockStore.write: block has ${len} tokens`);
    if (block.positions.length !== len) throw new RangeError(`KvBlockStore.write: ${block.positions.length} positions for ${len} tokens`);
    const p0 = block.positions[0];
    if (p0 < 0) throw new RangeError(`KvBlockStore.write: negative position ${p0}`);
    for (let i = 1; i < len; i++) {
      if (block.positions[i] !== p0 + i)
        throw new RangeError(
          `KvBlockStore.write: positions not consecutive at index ${i} (${block.positions[i - 1]} then ${block.positions[i]})`,
        );
    }
    const per = nKvHeads * len * headDim;
    for (const [name, arr] of [
      ['keys', block.keys],
      ['values', block.values],
    ] as const) {
      if (!Array.isArray(arr) || arr.length !== nLayers)
        throw new RangeError(`KvBlockStore.write: ${name} has ${arr?.length} layers, geometry says ${nLayers}`);
      arr.forEach((a, l) => {
        if (!(a instanceof Float32Array) || a.length !== per) {
          throw new RangeError(
            `KvBlockStore.write: ${name}[${l}] has ${(a as Float32Array)?.length} floats, expected ${nKvHeads}x${len}x${headDim} = ${per}`,
          );
        }
      });
    }
    return len;
  }

  private encode(hash: string, block: KvBlock, len: number): Buffer {
    const g = this.geometry;
    const r = Math.min(this.summaryKeys, len);
    const buf = Buffer.allocUnsafe(blockFileBytes(g, len, r));
    MAGIC.copy(buf, 0);
    buf.writeUInt32LE(KV_FORMAT_VERSION, 8);
    buf.writeUInt32LE(HEADER_BYTES, 12);
    buf.write(this.fingerprint, 16, 64, 'latin1');
    buf.write(hash, 80, 64, 'latin1');
    buf.writeUInt32LE(DTYPE_F32, 144);
    buf.writeUInt32LE(g.nLayers, 148);
    buf.writeUInt32LE(g.nKvHeads, 152);
    buf.writeUInt32LE(g.headDim, 156);
    buf.writeUInt32LE(len, 160);
    buf.writeUInt32LE(r, 164);
    let off = HEADER_BYTES;
    putI32(buf, off, block.tokenIds);
    off += 4 * len;
    putI32(buf, off, block.positions);
    off += 4 * len;
    for (let l = 0; l < g.nLayers; l++) {
      const sum = representativeKeys(block.keys[l], g.nKvHeads, len, g.headDim, r);
      putI32(buf, off, sum.offsets);
      off += sum.offsets.byteLength;
      putF32(buf, off, sum.keys);
      off += sum.keys.byteLength;
    }
    // Each checksum covers every byte before it: the next one continues from it.
    const summarySum = sealAt(buf, off);
    const keysFrom = off;
    off += TRAILER_BYTES;
    for (let l = 0; l < g.nLayers; l++) {
      putF32(buf, off, block.keys[l]);
      off += block.keys[l].byteLength;
    }
    const keysSum = sealAt(buf, off, keysFrom, summarySum);
    const valuesFrom = off;
    off += TRAILER_BYTES;
    for (let l = 0; l < g.nLayers; l++) {
      putF32(buf, off, block.values[l]);
      off += block.values[l].byteLength;
    }
    sealAt(buf, off, valuesFrom, keysSum);
    return buf;
  }

  /**
   * Header checks shared by full and summary reads: `head` holds at least the header, `size` is the file's size.
   * Returns the block length and summary key count, or a description of what is wrong.
   */
  private checkHeader(head: Buffer, size: number, hash: string): { len: number; r: number } | string {
    if (head.length >= MAGIC.length && !head.subarray(0, MAGIC.length).equals(MAGIC)) return 'not an Attend KV block (bad magic bytes)';
    if (size < HEADER_BYTES + TRAILER_BYTES || head.length < HEADER_BYTES)
      return `truncated: ${size} bytes, shorter than the ${HEADER_BYTES + TRAILER_BYTES}-byte header and checksum`;
    const version = head.readUInt32LE(8);
    if (version !== KV_FORMAT_VERSION) return `foreign format version ${version} (this build reads version ${KV_FORMAT_VERSION})`;
    if (head.readUInt32LE(12) !== HEADER_BYTES) return `corrupt header (header size ${head.readUInt32LE(12)})`;
    const dtype = head.readUInt32LE(144);
    if (dtype !== DTYPE_F32) return `unsupported or corrupt dtype code ${dtype} (expected ${DTYPE_F32} = f32)`;
    const fg: KvGeometry = { nLayers: head.readUInt32LE(148), nKvHeads: head.readUInt32LE(152), headDim: head.readUInt32LE(156) };
    const len = head.readUInt32LE(160);
    const r = head.readUInt32LE(164);
    if (fg.nLayers === 0 || fg.nKvHeads === 0 || fg.headDim === 0 || len === 0) return 'corrupt header (zero geometry or block length)';
    if (r === 0 || r > len) return `corrupt header (${r} summary keys for a block of ${len} tokens)`;
    const expected = blockFileBytes(fg, len, r);
    if (size < expected) return `truncated: ${size} of ${expected} bytes`;
    if (size > expected) return `size mismatch: ${size} bytes, the header implies ${expected}`;
    const fileFp = head.toString('latin1', 16, 80);
    if (fileFp !== this.fingerprint)
      return `written for model fingerprint ${fileFp.slice(0, 16)}…, this store's model is ${this.fingerprint.slice(0, 16)}…`;
    const fileHash = head.toString('latin1', 80, 144);
    if (fileHash !== hash) return `holds block ${fileHash.slice(0, 16)}…, not ${hash.slice(0, 16)}… (misplaced file)`;
    const g = this.geometry;
    if (fg.nLayers !== g.nLayers || fg.nKvHeads !== g.nKvHeads || fg.headDim !== g.headDim) {
      return `geometry ${fg.nLayers}x${fg.nKvHeads}x${fg.headDim} (layers x kv heads x head dim), expected ${g.nLayers}x${g.nKvHeads}x${g.headDim}`;
    }
    return { len, r };
  }

  /** Token ids and positions (after the header): the positions, or what is wrong. */
  private checkTokens(buf: Buffer, len: number, expectIds: ArrayLike<number>): Int32Array[] | string {
    const tokenIds = getI32(buf, HEADER_BYTES, len);
    const positions = getI32(buf, HEADER_BYTES + 4 * len, len);
    if (positions[0] < 0) return `corrupt positions (starts at ${positions[0]})`;
    for (let i = 1; i < len; i++) if (positions[i] !== positions[0] + i) return `corrupt positions (not consecutive at index ${i})`;
    if (expectIds.length !== len) return `holds ${len} tokens, expected ${expectIds.length}`;
    for (let i = 0; i < len; i++)
      if (tokenIds[i] !== expectIds[i]) return `token ids differ from the expected ones at index ${i} (${tokenIds[i]} vs ${expectIds[i]})`;
    return [tokenIds, positions];
  }

  /** The block, or a description of what is wrong with the file. */
  private decode(buf: Buffer, hash: string, expectIds: ArrayLike<number>): KvBlock | string {
    const h = this.checkHeader(buf, buf.length, hash);
    if (typeof h === 'string') return h;
    if (!sealed(buf, buf.length)) return 'checksum mismatch (corrupt data)';
    const { len, r } = h;
    const tok = this.checkTokens(buf, len, expectIds);
    if (typeof tok === 'string') return tok;
    const g = this.geometry;
    const per = g.nKvHeads * len * g.headDim;
    const layers = (from: number): Float32Array[] => Array.from({ length: g.nLayers }, (_, l) => viewF32(buf, from + 4 * per * l, per));
    return {
      tokenIds: tok[0],
      positions: tok[1],
      keys: layers(summaryEnd(g, len, r)),
      values: layers(keysEnd(g, len, r)),
    };
  }

  /**
   * The front of an open block file up to one of its inner checksums (`endOf(len, r)`: the summary's or the keys'),
   * checked against its header, that checksum and the expected token ids; or a description of what is wrong.
   */
  private readFront(
    fd: number,
    size: number,
    hash: string,
    expectIds: ArrayLike<number>,
    endOf: (len: number, r: number) => number,
    what: string,
  ): { buf: Buffer; len: number; r: number; tok: Int32Array[] } | string {
    const h = this.checkHeader(readWhole(fd, Math.min(size, HEADER_BYTES), 0), size, hash);
    if (typeof h === 'string') return h;
    const { len, r } = h;
    const end = endOf(len, r);
    const buf = readWhole(fd, end, 0);
    if (buf.length < end) return `truncated while reading (${buf.length} of ${end} bytes)`;
    if (!sealed(buf, end)) return `${what} checksum mismatch (corrupt data)`;
    const tok = this.checkTokens(buf, len, expectIds);
    if (typeof tok === 'string') return tok;
    return { buf, len, r, tok };
  }

  /** A block's keys (KvBlock without values), or a description of what is wrong. */
  private decodeKeys(fd: number, size: number, hash: string, expectIds: ArrayLike<number>): KvKeys | string {
    const g = this.geometry;
    const front = this.readFront(fd, size, hash, expectIds, (len, r) => keysEnd(g, len, r), 'keys');
    if (typeof front === 'string') return front;
    const { buf, len, r, tok } = front;
    const per = g.nKvHeads * len * g.headDim;
    const from = summaryEnd(g, len, r);
    return {
      tokenIds: tok[0],
      positions: tok[1],
      keys: Array.from({ length: g.nLayers }, (_, l) => viewF32(buf, from + 4 * per * l, per)),
    };
  }

  /** The summary at the front of an open block file, or a description of what is wrong with it. */
  private decodeSummary(fd: number, size: number, hash: string, expectIds: ArrayLike<number>): BlockSummary | string {
    const g = this.geometry;
    const front = this.readFront(fd, size, hash, expectIds, (len, r) => summaryEnd(g, len, r), 'summary');
    if (typeof front === 'string') return front;
    const { buf, len, r, tok } = front;
    const layers: LayerSummary[] = [];
    let off = HEADER_BYTES + 8 * len;
    const n = g.nKvHeads * r;
    for (let l = 0; l < g.nLayers; l++) {
      const offsets = getI32(buf, off, n);
      off += 4 * n;
      for (const o of offsets) if (o < 0 || o >= len) return `corrupt summary (offset ${o} in a block of ${len} tokens)`;
      layers.push({ offsets, keys: getF32(buf, off, n * g.headDim) });
      off += 4 * n * g.headDim;
    }
    return { start: tok[1][0], length: len, count: r, layers };
  }

  /** A summary table, or a description of what is wrong with the file. */
  private decodeTable(buf: Buffer, key: string, expectIds: ArrayLike<number>): SummaryTable | string {
    if (buf.length >= TABLE_MAGIC.length && !buf.subarray(0, TABLE_MAGIC.length).equals(TABLE_MAGIC))
      return 'not an Attend summary table (bad magic bytes)';
    if (buf.length < TABLE_HEADER_BYTES + TRAILER_BYTES) return `truncated: ${buf.length} bytes, shorter than the header and checksum`;
    const version = buf.readUInt32LE(8);
    if (version !== SUMMARY_TABLE_VERSION) return `foreign summary table version ${version} (this build reads ${SUMMARY_TABLE_VERSION})`;
    if (buf.readUInt32LE(12) !== TABLE_HEADER_BYTES) return `corrupt header (header size ${buf.readUInt32LE(12)})`;
    const [dtype, nLayers, nKvHeads, headDim, blockTokens, count, blocks] = [0, 1, 2, 3, 4, 5, 6].map((i) => buf.readUInt32LE(144 + 4 * i));
    if (dtype !== DTYPE_F32) return `unsupported or corrupt dtype code ${dtype} (expected ${DTYPE_F32} = f32)`;
    const g = this.geometry;
    if (nLayers !== g.nLayers || nKvHeads !== g.nKvHeads || headDim !== g.headDim)
      return `geometry ${nLayers}x${nKvHeads}x${headDim} (layers x kv heads x head dim), expected ${g.nLayers}x${g.nKvHeads}x${g.headDim}`;
    if (blocks === 0 || blockTokens === 0 || count === 0 || count > blockTokens)
      return 'corrupt header (zero blocks, block length or keys)';
    const expected = tableFileBytes(g, blocks, blockTokens, count);
    if (buf.length !== expected) return `size mismatch: ${buf.length} bytes, the header implies ${expected}`;
    if (!sealed(buf, buf.length)) return 'checksum mismatch (corrupt data)';
    const fileFp = buf.toString('latin1', 16, 80);
    if (fileFp !== this.fingerprint)
      return `written for model fingerprint ${fileFp.slice(0, 16)}…, this store's model is ${this.fingerprint.slice(0, 16)}…`;
    if (buf.toString('latin1', 80, 144) !== key) return `holds another summary table than ${key.slice(0, 16)}… (misplaced file)`;
    const n = blocks * blockTokens;
    if (expectIds.length !== n) return `covers ${n} tokens, expected ${expectIds.length}`;
    const ids = getI32(buf, TABLE_HEADER_BYTES, n);
    for (let i = 0; i < n; i++)
      if (ids[i] !== expectIds[i]) return `token ids differ from the expected ones at index ${i} (${ids[i]} vs ${expectIds[i]})`;
    const per = nKvHeads * blocks * count * headDim;
    const keys: Float32Array[] = [];
    for (let l = 0, off = TABLE_HEADER_BYTES + 4 * n; l < nLayers; l++, off += 4 * per) keys.push(viewF32(buf, off, per));
    return { blocks, blockTokens, count, keys };
  }

  /** Reports a bad entry and removes it, unless another process has replaced it since we opened it. */
  private discard(file: string, opened: fs.Stats, problem: string): void {
    let outcome = 'removed';
    try {
      const now = fs.lstatSync(file);
      if (now.ino === opened.ino && now.dev === opened.dev) fs.unlinkSync(file);
      else outcome = 'left alone (already replaced by another writer)';
    } catch (e) {
      const code = errCode(e);
      if (code !== 'ENOENT') outcome = `could not be removed (${code})`;
    }
    this.warn(`Attend KV cache: ${file}: ${problem}; entry ${outcome}, block will be recomputed`);
  }

  private afterWrite(size: number): void {
    this.writesSinceScan++;
    if (this.approxBytes === null || this.writesSinceScan >= RESCAN_EVERY) this.stats();
    else this.approxBytes += size;
    if ((this.approxBytes ?? 0) > this.maxBytes) this.evict();
  }

  /** Deletes least-recently-used entries (oldest mtime first) until the store is at or below lowWater * maxBytes. */
  private evict(): void {
    const all = this.scan();
    let total = 0;
    for (const e of all) total += e.size;
    if (total > this.maxBytes) {
      const target = this.maxBytes * this.lowWater;
      all.sort((a, b) => a.mtimeMs - b.mtimeMs || (a.file < b.file ? -1 : a.file > b.file ? 1 : 0));
      for (const e of all) {
        if (total <= target) break;
        try {
          fs.unlinkSync(e.file);
        } catch (err) {
          const code = errCode(err);
          if (code !== 'ENOENT') {
            if (!this.warnedCodes.has(`evict:${code}`)) {
              this.warnedCodes.add(`evict:${code}`);
              this.warn(`Attend KV cache: cannot evict ${e.file} (${describe(err)})`);
            }
            continue;
          }
        }
        total -= e.size;
      }
    }
    this.approxBytes = total;
    this.writesSinceScan = 0;
  }

  /** Every entry under the store (or one model directory); removes stale temp files; tolerates files vanishing. */
  private scan(onlyModel: string | null = null): ScanEntry[] {
    const out: ScanEntry[] = [];
    const now = Date.now();
    for (const m of readdirOrEmpty(this.dir)) {
      if (!MODEL_DIR_RE.test(m) || (onlyModel !== null && m !== onlyModel)) continue;
      const md = path.join(this.dir, m);
      for (const s of readdirOrEmpty(md)) {
        const encodings = s === ENCODINGS_DIR;
        if (!SHARD_DIR_RE.test(s) && !encodings) continue;
        const sd = path.join(md, s);
        for (const name of readdirOrEmpty(sd)) {
          const isEntry = encodings ? ENCODING_RE.test(name) : ENTRY_RE.test(name);
          if (!isEntry && !TEMP_RE.test(name)) continue;
          const file = path.join(sd, name);
          let st: fs.Stats;
          try {
            st = fs.statSync(file);
          } catch {
            continue; // vanished underneath (evicted or renamed by another process)
          }
          if (!st.isFile()) continue;
          if (isEntry) out.push({ file, size: st.size, mtimeMs: st.mtimeMs });
          else if (now - st.mtimeMs > STALE_TEMP_MS) {
            try {
              fs.unlinkSync(file);
            } catch {
              /* gone or not ours to remove */
            }
          }
        }
      }
    }
    return out;
  }
}
