// Document encodings remembered by content: a re-asked document is not tokenized again, in this process or the next.
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LITTLE_ENDIAN } from './kvstore';
import type { Encoding, Tokenizer } from './types';

const MAGIC = 0x41544e45; // 'ATNE'
const VERSION = 1;
const MAX_MEMORY_ENTRIES = 64;

/**
 * Encodings of document text (no special tokens), keyed by sha256 of the text, in memory (LRU) and, with a folder, on
 * disk as `<sha256>.enc`: header (magic, version, count), ids, starts, ends as int32 LE, then the sha256 of all that.
 * A bad or foreign file is ignored and rewritten; a folder that cannot be written only loses the disk half. The engine
 * keeps the folder inside its KV store's model folder (`encodings/`), whose size cap and LRU eviction cover these files.
 */
function keyOf(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

export class EncodingCache {
  private readonly memory = new Map<string, Encoding>();
  private writable = true;

  constructor(
    private readonly tok: Tokenizer,
    private readonly dir: string | null,
  ) {}

  encode(text: string): Encoding {
    const key = keyOf(text);
    const hit = this.lookup(key, text.length);
    if (hit) return hit;
    const enc = this.tok.encodeWithOffsets(text, { allowSpecial: false });
    this.writeDisk(key, enc);
    this.remember(key, enc);
    return enc;
  }

  /**
   * The encoding when it is remembered (in memory or on disk), else null: nothing is tokenized or written. For
   * counting text that may never be asked about (the status-bar meter recounts an edited file after each pause).
   */
  peek(text: string): Encoding | null {
    return this.lookup(keyOf(text), text.length);
  }

  private lookup(key: string, textLength: number): Encoding | null {
    const mem = this.memory.get(key);
    const hit = mem ?? this.readDisk(key, textLength);
    if (hit) this.remember(key, hit);
    return hit;
  }

  private remember(key: string, enc: Encoding): void {
    this.memory.delete(key);
    this.memory.set(key, enc);
    if (this.memory.size > MAX_MEMORY_ENTRIES) this.memory.delete(this.memory.keys().next().value as string);
  }

  /** Forgets every remembered encoding, in memory and on disk. */
  clear(): void {
    this.memory.clear();
    if (this.dir) fs.rmSync(this.dir, { recursive: true, force: true });
  }

  private file(key: string): string {
    return path.join(this.dir!, `${key}.enc`);
  }

  private readDisk(key: string, textLength: number): Encoding | null {
    if (!this.dir) return null;
    let buf: Buffer;
    try {
      buf = fs.readFileSync(this.file(key));
    } catch {
      return null;
    }
    if (buf.length < 12 + 32 || buf.readUInt32LE(0) !== MAGIC || buf.readUInt32LE(4) !== VERSION) return null;
    const n = buf.readUInt32LE(8);
    if (buf.length !== 12 + 12 * n + 32) return null;
    const body = buf.subarray(0, 12 + 12 * n);
    if (
      !createHash('sha256')
        .update(body)
        .digest()
        .equals(buf.subarray(12 + 12 * n))
    )
      return null;
    const all = new Int32Array(n * 3);
    if (LITTLE_ENDIAN) new Uint8Array(all.buffer).set(body.subarray(12));
    else for (let i = 0; i < n * 3; i++) all[i] = buf.readInt32LE(12 + 4 * i);
    const ids = Array.from(all.subarray(0, n));
    const starts = all.slice(n, 2 * n);
    const ends = all.slice(2 * n, 3 * n);
    // Offsets must lie inside this text (a sha256 collision aside, this only fails for a tampered file).
    if (n > 0 && (ends[n - 1] > textLength || starts[0] < 0)) return null;
    // Used now: the store's LRU eviction goes by modification time (KvBlockStore counts these files in its budget).
    try {
      const now = new Date();
      fs.utimesSync(this.file(key), now, now);
    } catch {
      /* evicted meanwhile, or a read-only folder: the order is best-effort */
    }
    return { ids, starts, ends };
  }

  private writeDisk(key: string, enc: Encoding): void {
    if (!this.dir || !this.writable) return;
    const n = enc.ids.length;
    const body = Buffer.alloc(12 + 12 * n);
    body.writeUInt32LE(MAGIC, 0);
    body.writeUInt32LE(VERSION, 4);
    body.writeUInt32LE(n, 8);
    for (let i = 0; i < n; i++) {
      body.writeInt32LE(enc.ids[i], 12 + 4 * i);
      body.writeInt32LE(enc.starts[i], 12 + 4 * (n + i));
      body.writeInt32LE(enc.ends[i], 12 + 4 * (2 * n + i));
    }
    const tmp = path.join(this.dir, `.${key}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      fs.mkdirSync(this.dir, { recursive: true });
      fs.writeFileSync(tmp, Buffer.concat([body, createHash('sha256').update(body).digest()]));
      fs.renameSync(tmp, this.file(key));
    } catch {
      this.writable = false;
      try {
        fs.rmSync(tmp, { force: true });
      } catch {
        // The folder itself is unusable; nothing was written.
      }
    }
  }
}
