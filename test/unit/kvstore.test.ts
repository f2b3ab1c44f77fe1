// The persisted KV block store: hash chain, exact round trip, every way a file can be bad, atomic publication,
// read-only stores, LRU eviction, concurrent processes, and the model fingerprint.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { execFileSync, fork } from 'node:child_process';
import {
  KvBlockStore,
  blockFileBytes,
  blockHashes,
  canonicalJson,
  chainHash,
  crc32,
  crc32Table,
  defaultCacheDir,
  modelFingerprint,
  rootHash,
  summaryTableKey,
  ENCODINGS_DIR,
  TRAILER_BYTES,
  type KvBlock,
  type KvGeometry,
  type SummaryTable,
} from '../../engine/kvstore';
import { DEFAULT_SUMMARY_KEYS, representativeKeys } from '../../engine/block-summary';
import { EncodingCache } from '../../engine/encoding-cache';
import { loadTokenizer } from '../../engine/tokenizer';
import { fixturePath } from '../../tools/make-fixture';
import { makeBlock, makeHashes, sameBlock, type WorkerArgs, type WorkerReport } from './helpers/kvstore-worker';

const FP = createHash('sha256').update('test model').digest('hex');
const OTHER_FP = createHash('sha256').update('another model').digest('hex');
const GEO: KvGeometry = { nLayers: 2, nKvHeads: 2, headDim: 8 };
const L = 16;

const roots: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-kvstore-'));
  roots.push(d);
  return d;
}
after(() => {
  for (const d of roots) fs.rmSync(d, { recursive: true, force: true });
});

function openStore(dir: string, over: Partial<{ maxBytes: number; geometry: KvGeometry; fingerprint: string; lowWater: number }> = {}) {
  const warnings: string[] = [];
  const store = new KvBlockStore(dir, {
    maxBytes: over.maxBytes ?? 1 << 30,
    geometry: over.geometry ?? GEO,
    fingerprint: over.fingerprint ?? FP,
    lowWater: over.lowWater ?? 1,
    warn: (m) => warnings.push(m),
  });
  return { store, warnings };
}

function blocks(n: number, geo = GEO, len = L): { blocks: KvBlock[]; hashes: string[] } {
  const bs = Array.from({ length: n }, (_, i) => makeBlock(geo, len, i));
  return { blocks: bs, hashes: makeHashes(FP, bs) };
}

/** Rewrites the checksum trailer so that only the deliberate header change is wrong. */
function resum(buf: Buffer): Buffer {
  buf.writeUInt32LE(crc32(buf.subarray(0, buf.length - TRAILER_BYTES)), buf.length - TRAILER_BYTES);
  return buf;
}

/** Damages a byte of the values (the file's end): `partial` still reads the entry, `full` reports it and warns. */
function damageValues(file: string, partial: () => unknown, full: () => unknown, warnings: readonly string[]): void {
  const buf = fs.readFileSync(file);
  buf[buf.length - TRAILER_BYTES - 100] ^= 0x01;
  fs.writeFileSync(file, buf);
  assert.ok(partial());
  assert.deepEqual(warnings, []);
  assert.equal(full(), null);
  assert.match(warnings[0], /checksum mismatch/);
}

/** A fresh store holding one written block: the store, its warnings, the block, its key and its file. */
function oneStoredBlock() {
  const { store, warnings } = openStore(tmpDir());
  const {
    blocks: [b],
    hashes: [h],
  } = blocks(1);
  assert.equal(store.write(h, b), true);
  return { store, warnings, b, h, file: store.pathFor(h) };
}

/**
 * Writes one block, damages its file with `damage`, then reads it back (in full, or only its summary): expects null,
 * one warning matching `re`, file gone.
 */
function expectRejected(
  damage: (buf: Buffer, file: string) => void,
  re: RegExp,
  reader?: (dir: string) => ReturnType<typeof openStore>,
  expectIds?: ArrayLike<number>,
  how: 'read' | 'summary' | 'keys' = 'read',
): void {
  const dir = tmpDir();
  const { store } = openStore(dir);
  const {
    blocks: [b],
    hashes: [h],
  } = blocks(1);
  assert.equal(store.write(h, b), true);
  const file = store.pathFor(h);
  damage(fs.readFileSync(file), file);
  const r = reader ? reader(dir) : openStore(dir);
  const ids = expectIds ?? b.tokenIds;
  const got = how === 'read' ? r.store.read(h, ids) : how === 'keys' ? r.store.readKeys(h, ids) : r.store.readSummary(h, ids);
  assert.equal(got, null);
  assert.equal(r.warnings.length, 1, `warnings: ${JSON.stringify(r.warnings)}`);
  assert.match(r.warnings[0], re);
  assert.ok(r.warnings[0].includes(file), `warning names the file: ${r.warnings[0]}`);
  assert.equal(fs.existsSync(file), false, 'bad entry removed');
  assert.equal(r.store.has(h), false);
  // Absent now: a second read is a plain miss, without another warning.
  assert.equal(r.store.read(h, b.tokenIds), null);
  assert.equal(r.warnings.length, 1);
}

test('chain hash: deterministic, and any change to an earlier id (or the fingerprint) changes every later key', () => {
  const ids = Array.from({ length: 3 * 8 }, (_, i) => (i * 37) % 101);
  const hs = blockHashes(FP, ids, 8);
  assert.equal(hs.length, 3);
  for (const h of hs) assert.match(h, /^[0-9a-f]{64}$/);
  assert.deepEqual(blockHashes(FP, ids, 8), hs);
  assert.equal(hs[0], chainHash(rootHash(FP), ids.slice(0, 8)));
  assert.equal(hs[2], chainHash(chainHash(chainHash(rootHash(FP), ids.slice(0, 8)), ids.slice(8, 16)), ids.slice(16, 24)));
  for (let pos = 0; pos < 16; pos++) {
    const changed = ids.slice();
    changed[pos] += 1;
    const hc = blockHashes(FP, changed, 8);
    assert.notEqual(hc[2], hs[2], `changing id ${pos} changes the key of block 2`);
    if (pos >= 8) assert.equal(hc[0], hs[0], 'earlier blocks keep their keys');
  }
  const swapped = ids.slice();
  [swapped[0], swapped[1]] = [swapped[1], swapped[0]];
  assert.notEqual(blockHashes(FP, swapped, 8)[2], hs[2], 'order matters');
  assert.notEqual(blockHashes(OTHER_FP, ids, 8)[0], hs[0], 'fingerprint matters');
  assert.equal(blockHashes(FP, ids.slice(0, 20), 8).length, 2);
  assert.equal(blockHashes(FP, ids.slice(0, 20), 8, true).length, 3);
  // ids are int32: 256 and 1 must not collide as bytes, and non-integers are refused.
  assert.notEqual(chainHash(rootHash(FP), [256]), chainHash(rootHash(FP), [1, 0]));
  assert.throws(() => chainHash(rootHash(FP), [1.5]), /32-bit integer/);
  assert.throws(() => chainHash('../x', [1]), /hex/);
});

test('round trip is bit-identical (NaN payloads, -0, subnormals, infinities) and partial blocks work', () => {
  const dir = tmpDir();
  const { store, warnings } = openStore(dir);
  const {
    blocks: [b],
    hashes: [h],
  } = blocks(1);
  const special = new Uint32Array([0x7fc00001, 0xffa00000, 0x80000000, 0x00000001, 0x7f800000, 0xff800000, 0x3f800000]);
  new Uint32Array(b.keys[1].buffer, b.keys[1].byteOffset, special.length).set(special);
  assert.equal(store.has(h), false);
  assert.equal(store.read(h, b.tokenIds), null);
  assert.equal(store.write(h, b), true);
  assert.equal(store.has(h), true);
  const got = store.read(h, b.tokenIds);
  assert.ok(got);
  assert.ok(sameBlock(got, b), 'bit-identical');
  assert.deepEqual(new Uint32Array(got.keys[1].buffer, got.keys[1].byteOffset, special.length), special);
  assert.equal(fs.statSync(store.pathFor(h)).size, blockFileBytes(GEO, L));
  assert.equal(store.pathFor(h), path.join(dir, FP.slice(0, 16), h.slice(0, 2), `${h}.kv`));
  assert.deepEqual(store.stats(), { entries: 1, bytes: blockFileBytes(GEO, L) });

  // A short tail block (fewer tokens) and a differently shaped geometry.
  const geo2: KvGeometry = { nLayers: 3, nKvHeads: 1, headDim: 5 };
  const s2 = openStore(tmpDir(), { geometry: geo2 });
  const tail = makeBlock(geo2, 7, 4);
  const th = chainHash(rootHash(FP), tail.tokenIds);
  assert.equal(s2.store.write(th, tail), true);
  assert.ok(sameBlock(s2.store.read(th, tail.tokenIds)!, tail));
  assert.deepEqual(warnings, []);
  assert.deepEqual(s2.warnings, []);

  // Writing again leaves the complete entry alone (same inode, not rewritten).
  const ino = fs.statSync(store.pathFor(h)).ino;
  assert.equal(store.write(h, b), true);
  assert.equal(fs.statSync(store.pathFor(h)).ino, ino);
});

test('a block that does not match the geometry is refused at write time', () => {
  const { store } = openStore(tmpDir());
  const b = makeBlock({ nLayers: 2, nKvHeads: 2, headDim: 4 }, L, 0);
  assert.throws(() => store.write(chainHash(rootHash(FP), b.tokenIds), b), /expected 2x16x8/);
  const c = makeBlock(GEO, L, 0);
  const gap = { ...c, positions: c.positions.map((p, i) => (i === 5 ? p + 1 : p)) };
  assert.throws(() => store.write(chainHash(rootHash(FP), c.tokenIds), gap), /consecutive/);
});

test('a corrupt byte in the payload: null, a warning naming the file, file removed', () => {
  expectRejected((buf, file) => {
    buf[buf.length - TRAILER_BYTES - 100] ^= 0x01;
    fs.writeFileSync(file, buf);
  }, /checksum mismatch/);
});

test('a corrupt byte in the checksum itself is caught too', () => {
  expectRejected((buf, file) => {
    buf[buf.length - 1] ^= 0x80;
    fs.writeFileSync(file, buf);
  }, /checksum mismatch/);
});

test('a truncated file (cut mid-payload, and cut inside the header)', () => {
  expectRejected((buf, file) => fs.writeFileSync(file, buf.subarray(0, buf.length - 1000)), /truncated: \d+ of \d+ bytes/);
  expectRejected((buf, file) => fs.writeFileSync(file, buf.subarray(0, 40)), /truncated: 40 bytes/);
  expectRejected((_buf, file) => fs.writeFileSync(file, Buffer.alloc(0)), /truncated: 0 bytes/);
  expectRejected((buf, file) => fs.writeFileSync(file, Buffer.concat([buf, Buffer.alloc(4)])), /size mismatch/);
});

test('the summary at the front of a block is read alone, with its own checksum, and leaves the LRU order alone', () => {
  const { store, warnings, b, h, file } = oneStoredBlock();
  const mtime = fs.statSync(file).mtimeMs;
  const s = store.readSummary(h, b.tokenIds);
  assert.ok(s);
  assert.equal(s.start, b.positions[0]);
  assert.equal(s.length, L);
  assert.equal(s.count, Math.min(DEFAULT_SUMMARY_KEYS, L));
  for (let l = 0; l < GEO.nLayers; l++) {
    const want = representativeKeys(b.keys[l], GEO.nKvHeads, L, GEO.headDim, s.count);
    assert.deepEqual(s.layers[l].offsets, want.offsets);
    assert.deepEqual(s.layers[l].keys, want.keys);
    for (let h2 = 0; h2 < GEO.nKvHeads; h2++) {
      for (let j = 0; j < s.count; j++) {
        const t: number = s.layers[l].offsets[h2 * s.count + j];
        const stored = s.layers[l].keys.subarray((h2 * s.count + j) * GEO.headDim, (h2 * s.count + j + 1) * GEO.headDim);
        const original = b.keys[l].subarray((h2 * L + t) * GEO.headDim, (h2 * L + t + 1) * GEO.headDim);
        assert.deepEqual(stored, original, `layer ${l} head ${h2} key ${j} is the block's key at offset ${t}`);
      }
    }
  }
  assert.equal(fs.statSync(file).mtimeMs, mtime, 'scoring does not make a block recent');
  // The K/V payload is outside the summary: damage there leaves the summary readable, and the full read catches it.
  damageValues(
    file,
    () => store.readSummary(h, b.tokenIds),
    () => store.read(h, b.tokenIds),
    warnings,
  );
});

test('the keys of a block are read alone, up to their own checksum; damage in them is caught, damage in the values is not theirs', () => {
  const { store, warnings, b, h, file } = oneStoredBlock();
  const k = store.readKeys(h, b.tokenIds);
  assert.ok(k);
  assert.deepEqual(k.tokenIds, b.tokenIds);
  assert.deepEqual(k.positions, b.positions);
  assert.equal('values' in k, false);
  for (let l = 0; l < GEO.nLayers; l++) assert.deepEqual(k.keys[l], b.keys[l], `layer ${l} keys`);
  // The values are the file's last part: damage there leaves the keys readable, and the full read catches it.
  const valueBytes = GEO.nLayers * GEO.nKvHeads * L * GEO.headDim * 4;
  damageValues(
    file,
    () => store.readKeys(h, b.tokenIds),
    () => store.read(h, b.tokenIds),
    warnings,
  );
  // Damage in the keys: readKeys reports it and removes the entry.
  expectRejected(
    (bytes, f) => {
      bytes[bytes.length - TRAILER_BYTES - valueBytes - TRAILER_BYTES - 100] ^= 0x01;
      fs.writeFileSync(f, bytes);
    },
    /keys checksum mismatch/,
    undefined,
    undefined,
    'keys',
  );
  expectRejected(
    (bytes, f) => fs.writeFileSync(f, bytes.subarray(0, bytes.length - valueBytes - 100)),
    /truncated/,
    undefined,
    undefined,
    'keys',
  );
  expectRejected(
    (bytes, f) => fs.writeFileSync(f, bytes),
    /token ids differ/,
    undefined,
    Int32Array.from(b.tokenIds, (t, i) => (i === 3 ? t + 1 : t)),
    'keys',
  );
});

test('a damaged summary, a truncated file or other token ids: readSummary returns null, warns and removes the entry', () => {
  const summaryByte = 168 + 8 * L + 10;
  expectRejected(
    (buf, file) => {
      buf[summaryByte] ^= 0x01;
      fs.writeFileSync(file, buf);
    },
    /summary checksum mismatch/,
    undefined,
    undefined,
    'summary',
  );
  // The full read checks the summary bytes too (the trailer covers the whole file).
  expectRejected((buf, file) => {
    buf[summaryByte] ^= 0x01;
    fs.writeFileSync(file, buf);
  }, /checksum mismatch/);
  expectRejected(
    (buf, file) => fs.writeFileSync(file, buf.subarray(0, buf.length - 1000)),
    /truncated: \d+ of \d+ bytes/,
    undefined,
    undefined,
    'summary',
  );
  expectRejected((buf, file) => fs.writeFileSync(file, buf.subarray(0, 100)), /truncated: 100 bytes/, undefined, undefined, 'summary');
  expectRejected(
    () => {},
    /token ids differ/,
    undefined,
    Array.from({ length: L }, (_, i) => i + 1000),
    'summary',
  );
  expectRejected(
    (buf, file) => {
      buf.writeUInt32LE(L + 1, 164);
      fs.writeFileSync(file, resum(buf));
    },
    /17 summary keys for a block of 16 tokens/,
    undefined,
    undefined,
    'summary',
  );
});

test('representative keys: the key unlike the others is always kept, picks are distinct and deterministic', () => {
  const nKv = 2;
  const d = 4;
  const len = 32;
  const keys = new Float32Array(nKv * len * d);
  for (let i = 0; i < keys.length; i++) keys[i] = 0.01 * Math.sin(i);
  for (let t = 0; t < 4; t++) keys.set([0.8, 0, 0, 0], t * d); // head 0: four alike keys with the largest norm
  keys.set([0, 0, 0.5, 0], (0 * len + 21) * d); // and offset 21, unlike every other key but smaller than those four
  for (let t = 0; t < len; t++) keys[(1 * len + t) * d] += 1; // head 1: all alike but along one axis
  keys.set([1, -0.6, 0, 0], (1 * len + 7) * d);
  const a = representativeKeys(keys, nKv, len, d, 3);
  const b = representativeKeys(keys, nKv, len, d, 3);
  assert.deepEqual(a, b);
  assert.ok(Array.from(a.offsets.subarray(0, 3)).includes(21), `head 0 picks ${a.offsets.subarray(0, 3)}`);
  assert.equal(Array.from(a.offsets.subarray(0, 3)).filter((t) => t < 4).length, 1, 'one of the four alike keys stands for all');
  assert.ok(Array.from(a.offsets.subarray(3, 6)).includes(7), `head 1 picks ${a.offsets.subarray(3, 6)}`);
  for (const h of [0, 1]) assert.equal(new Set(a.offsets.subarray(h * 3, h * 3 + 3)).size, 3);
  // More keys asked for than the block has: every key, once.
  const all = representativeKeys(keys.subarray(0, nKv * 2 * d), nKv, 2, d, 8);
  assert.equal(all.offsets.length, nKv * 2);
});

test('a file that is not a block at all', () => {
  expectRejected(
    (_buf, file) => fs.writeFileSync(file, 'hello, this is some text that is long enough to have a header... '.repeat(10)),
    /bad magic/,
  );
});

test('a foreign format version', () => {
  expectRejected((buf, file) => {
    buf.writeUInt32LE(99, 8);
    fs.writeFileSync(file, resum(buf));
  }, /foreign format version 99/);
});

test('another model fingerprint inside the file', () => {
  expectRejected((buf, file) => {
    buf.write(OTHER_FP, 16, 64, 'latin1');
    fs.writeFileSync(file, resum(buf));
  }, /fingerprint/);
});

test('a file stored under another block key (misplaced)', () => {
  expectRejected((buf, file) => {
    buf.write(OTHER_FP, 80, 64, 'latin1');
    fs.writeFileSync(file, resum(buf));
  }, /misplaced/);
});

test('a geometry mismatch between the file and the store', () => {
  expectRejected(
    () => undefined,
    /geometry 2x2x8 .* expected 2x4x4/,
    (dir) => openStore(dir, { geometry: { nLayers: 2, nKvHeads: 4, headDim: 4 } }),
  );
});

test('token ids that differ from the expected ones', () => {
  const b = makeBlock(GEO, L, 0);
  const other = Int32Array.from(b.tokenIds);
  other[L - 1] += 1;
  expectRejected(() => undefined, new RegExp(`token ids differ .* index ${L - 1}`), undefined, other);
  expectRejected(() => undefined, /holds 16 tokens, expected 15/, undefined, b.tokenIds.subarray(0, L - 1));
});

test('keys that could leave the directory are refused without throwing on read', () => {
  const { store, warnings } = openStore(tmpDir());
  const b = makeBlock(GEO, L, 0);
  for (const bad of ['../../etc/passwd', FP.toUpperCase(), FP.slice(0, 63), `${FP.slice(0, 62)}/.`, '']) {
    assert.equal(store.has(bad), false);
    assert.equal(store.read(bad, b.tokenIds), null);
    assert.throws(() => store.write(bad, b), /64 lowercase hex/);
  }
  assert.equal(warnings.length, 5);
  assert.throws(() => new KvBlockStore(tmpDir(), { maxBytes: 1, geometry: GEO, fingerprint: '../x' }), /fingerprint/);
});

test('temp files are never visible as entries; writes leave none; stale ones are swept', () => {
  const dir = tmpDir();
  const { store, warnings } = openStore(dir);
  const { blocks: bs, hashes } = blocks(3);
  assert.equal(store.write(hashes[0], bs[0]), true);
  const shard = path.dirname(store.pathFor(hashes[0]));
  assert.deepEqual(fs.readdirSync(shard), [`${hashes[0]}.kv`], 'no temp file left behind');

  // A crashed writer's leftover: a complete block's bytes under a temp name for block 1.
  const complete = fs.readFileSync(store.pathFor(hashes[0]));
  const shard1 = path.dirname(store.pathFor(hashes[1]));
  fs.mkdirSync(shard1, { recursive: true });
  const fresh = path.join(shard1, `.${hashes[1]}.12345.abcdef.tmp`);
  const stale = path.join(shard1, `.${hashes[1]}.12346.abcdef.tmp`);
  fs.writeFileSync(fresh, complete);
  fs.writeFileSync(stale, complete);
  const old = (Date.now() - 2 * 3600 * 1000) / 1000;
  fs.utimesSync(stale, old, old);
  assert.equal(store.has(hashes[1]), false);
  assert.equal(store.read(hashes[1], bs[1].tokenIds), null);
  assert.deepEqual(store.stats(), { entries: 1, bytes: complete.length });
  assert.equal(fs.existsSync(stale), false, 'stale temp swept by the scan');
  assert.equal(fs.existsSync(fresh), true, 'a fresh temp (a writer in progress) is left alone');
  assert.deepEqual(warnings, []);
});

test('clear() removes only what the store names; clear("model") keeps other models', () => {
  const dir = tmpDir();
  const a = openStore(dir);
  const b = openStore(dir, { fingerprint: OTHER_FP });
  const { blocks: bs, hashes } = blocks(2);
  a.store.write(hashes[0], bs[0]);
  a.store.write(hashes[1], bs[1]);
  b.store.write(hashes[0], bs[0]);
  fs.writeFileSync(path.join(dir, 'user-file.txt'), 'keep me');
  assert.equal(a.store.stats().entries, 3);
  a.store.clear('model');
  assert.equal(a.store.has(hashes[0]), false);
  assert.equal(b.store.has(hashes[0]), true);
  assert.equal(fs.existsSync(a.store.modelDir), false);
  a.store.clear();
  assert.deepEqual(a.store.stats(), { entries: 0, bytes: 0 });
  assert.deepEqual(fs.readdirSync(dir), ['user-file.txt']);
});

function checkReadOnly(dir: string): void {
  const { store, warnings } = openStore(dir);
  const { blocks: bs, hashes } = blocks(2);
  assert.equal(store.write(hashes[0], bs[0]), false);
  assert.equal(warnings.length, 1, JSON.stringify(warnings));
  assert.match(warnings[0], /caching to disk is off for this session/);
  assert.ok(store.readOnlyReason);
  assert.equal(store.write(hashes[1], bs[1]), false);
  assert.equal(warnings.length, 1, 'warned once');
  assert.equal(store.read(hashes[0], bs[0].tokenIds), null);
  assert.equal(store.has(hashes[0]), false);
  assert.deepEqual(store.stats(), { entries: 0, bytes: 0 });
}

test('an unwritable store: write returns false with one warning, reads keep working', () => {
  // As root, chmod does not stop writes; a store whose parent is a regular file fails for everyone (ENOTDIR).
  const base = tmpDir();
  const file = path.join(base, 'not-a-dir');
  fs.writeFileSync(file, 'x');
  checkReadOnly(path.join(file, 'store'));

  const ro = path.join(base, 'ro');
  fs.mkdirSync(ro);
  fs.chmodSync(ro, 0o555);
  let chmodBites = true;
  try {
    fs.writeFileSync(path.join(ro, 'probe'), 'x');
    fs.unlinkSync(path.join(ro, 'probe'));
    chmodBites = false; // running as root (or with CAP_DAC_OVERRIDE): chmod 555 does not stop writes
  } catch {
    /* chmod works here */
  }
  if (chmodBites) checkReadOnly(ro);
  fs.chmodSync(ro, 0o755);
});

test('a store that goes read-only after some entries were written keeps serving them', () => {
  const base = tmpDir();
  const { store, warnings } = openStore(base);
  const { blocks: bs, hashes } = blocks(3);
  assert.equal(store.write(hashes[0], bs[0]), true);
  // Replace the shard directory for block 1 with a regular file so its write fails.
  const shard1 = path.dirname(store.pathFor(hashes[1]));
  if (shard1 === path.dirname(store.pathFor(hashes[0]))) return; // same shard by chance: nothing to provoke
  fs.writeFileSync(shard1, 'in the way');
  assert.equal(store.write(hashes[1], bs[1]), false);
  assert.equal(warnings.length, 1);
  assert.ok(sameBlock(store.read(hashes[0], bs[0].tokenIds)!, bs[0]));
  assert.equal(store.write(hashes[2], bs[2]), false, 'writing stays off for the session');
  assert.equal(warnings.length, 1);
});

test('the size cap evicts least recently used entries first', () => {
  const dir = tmpDir();
  const size = blockFileBytes(GEO, L);
  const { store, warnings } = openStore(dir, { maxBytes: 3 * size });
  const { blocks: bs, hashes } = blocks(6);
  const [A, B, C, D, E, F] = [0, 1, 2, 3, 4, 5];
  for (const i of [A, B, C]) assert.equal(store.write(hashes[i], bs[i]), true);
  assert.equal(store.stats().entries, 3);
  assert.ok(store.read(hashes[A], bs[A].tokenIds)); // A is now the most recent
  assert.equal(store.write(hashes[D], bs[D]), true);
  const present = () => hashes.map((h, i) => (store.has(h) ? i : -1)).filter((i) => i >= 0);
  assert.deepEqual(present(), [A, C, D], 'B (least recently used) went first');
  assert.ok(store.read(hashes[C], bs[C].tokenIds));
  assert.equal(store.write(hashes[E], bs[E]), true);
  assert.deepEqual(present(), [C, D, E], 'then A');
  // Re-writing an existing entry counts as a use.
  assert.equal(store.write(hashes[C], bs[C]), true);
  assert.equal(store.write(hashes[F], bs[F]), true);
  assert.deepEqual(present(), [C, E, F], 'then D');
  assert.ok(store.stats().bytes <= 3 * size);
  assert.deepEqual(warnings, []);

  // Another process's entries count against the same cap, and vanished files are tolerated.
  const other = openStore(dir, { maxBytes: 3 * size, fingerprint: OTHER_FP });
  fs.unlinkSync(store.pathFor(hashes[C])); // vanishes underneath
  assert.equal(other.store.write(hashes[A], bs[A]), true);
  assert.equal(other.store.write(hashes[B], bs[B]), true);
  assert.ok(other.store.stats().bytes <= 3 * size);
  assert.deepEqual(present(), [F], 'the older model entries were evicted first');
  assert.deepEqual(other.warnings, []);

  // lowWater: evict further than the cap so the next writes do not all rescan.
  const lw = openStore(tmpDir(), { maxBytes: 4 * size, lowWater: 0.5 });
  for (let i = 0; i < 5; i++) lw.store.write(hashes[i], bs[i]);
  assert.equal(lw.store.stats().entries, 2);
});

test('concurrent processes writing and reading the same blocks never see a wrong or partial block', async () => {
  const dir = tmpDir();
  // Blocks of 256 KiB so that a write takes long enough for a torn read to show if publication were not atomic.
  const geometry: KvGeometry = { nLayers: 4, nKvHeads: 4, headDim: 32 };
  const blockTokens = 64;
  const nBlocks = 24;
  const size = blockFileBytes(geometry, blockTokens);
  const args: WorkerArgs = { dir, fingerprint: FP, geometry, blockTokens, nBlocks, iterations: 400, maxBytes: 10 * size, seed: 17 };
  const helper = path.join(__dirname, 'helpers', 'kvstore-worker.js');
  const nWorkers = 4;
  const reports = await Promise.all(
    Array.from(
      { length: nWorkers },
      (_, id) =>
        new Promise<WorkerReport>((resolve, reject) => {
          const child = fork(helper, [String(id), JSON.stringify(args)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
          let report: WorkerReport | null = null;
          child.on('message', (m) => (report = m as WorkerReport));
          child.on('error', reject);
          // 'close' (not 'exit'): it comes after the IPC channel is drained, so the report has arrived.
          child.on('close', (code, signal) =>
            report && code === 0 ? resolve(report) : reject(new Error(`worker ${id} exited ${code ?? signal} without a report`)),
          );
        }),
    ),
  );
  let hits = 0;
  let writes = 0;
  for (const r of reports) {
    assert.equal(r.error, null, r.error ?? '');
    assert.equal(r.wrong, 0, `worker ${r.id} read a wrong block`);
    assert.equal(r.writeFailures, 0, `worker ${r.id}: ${r.warnings.join('\n')}`);
    assert.deepEqual(r.warnings, [], `worker ${r.id} warnings:\n${r.warnings.join('\n')}`);
    hits += r.hits;
    writes += r.writes;
  }
  assert.ok(hits > 100, `readers hit the cache (${hits} hits)`);
  assert.ok(writes > 400);

  // Every surviving file reads back valid, and no temp files are left.
  const bs = Array.from({ length: nBlocks }, (_, i) => makeBlock(geometry, blockTokens, i));
  const hashes = makeHashes(FP, bs);
  const check = new KvBlockStore(dir, { maxBytes: 10 * size, geometry, fingerprint: FP, lowWater: 1, warn: (m) => assert.fail(m) });
  let files = 0;
  const modelDir = check.modelDir;
  for (const s of fs.readdirSync(modelDir)) {
    for (const name of fs.readdirSync(path.join(modelDir, s))) {
      assert.match(name, /^[0-9a-f]{64}\.kv$/, 'only complete entries remain');
      const i = hashes.indexOf(name.slice(0, 64));
      assert.ok(i >= 0, `unknown entry ${name}`);
      assert.ok(sameBlock(check.read(hashes[i], bs[i].tokenIds)!, bs[i]));
      files++;
    }
  }
  assert.ok(files > 0 && files < nBlocks, `eviction ran under concurrency (${files} entries survive)`);
  // Each process only counts its own writes between rescans, so together they may overshoot the cap a little; the next
  // new block a fresh writer stores (its first write rescans) brings the store back under it. (A write of a block that
  // is already there only touches it and does not evict: writing hashes[0] here made this test flaky.)
  const extra = makeBlock(geometry, blockTokens, nBlocks);
  assert.equal(check.write(chainHash(hashes[nBlocks - 1], extra.tokenIds), extra), true);
  assert.ok(check.stats().bytes <= 10 * size, `${check.stats().bytes} > ${10 * size}`);
});

// ---------------------------------------------------------------------------------------------------------------

function fakeModel(): string {
  const d = tmpDir();
  fs.writeFileSync(path.join(d, 'config.json'), JSON.stringify({ model_type: 'llama', hidden_size: 64 }));
  fs.writeFileSync(path.join(d, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE' } }));
  fs.writeFileSync(path.join(d, 'model-00001-of-00002.safetensors'), Buffer.alloc(3 << 20, 1));
  fs.writeFileSync(path.join(d, 'model-00002-of-00002.safetensors'), Buffer.alloc(1000, 2));
  fs.writeFileSync(path.join(d, 'README.md'), 'not hashed');
  return d;
}

test('model fingerprint: stable, sensitive to config, tokenizer, weights and settings, not to key order', () => {
  const m = fakeModel();
  const cache = tmpDir();
  const settings = { window: 4096, sinks: 4, blockTokens: 128, dtype: 'f32' };
  const fp = modelFingerprint(m, settings, cache);
  assert.match(fp, /^[0-9a-f]{64}$/);
  assert.equal(modelFingerprint(m, { dtype: 'f32', blockTokens: 128, sinks: 4, window: 4096 }, cache), fp, 'key order does not matter');
  assert.notEqual(modelFingerprint(m, { ...settings, window: 2048 }, cache), fp);
  assert.notEqual(modelFingerprint(m, { ...settings, sinks: 0 }, cache), fp);
  fs.writeFileSync(path.join(m, 'README.md'), 'changed');
  assert.equal(modelFingerprint(m, settings, cache), fp, 'other files do not matter');

  const touch = (f: string, data: Buffer | string) => {
    const st = fs.statSync(f);
    fs.writeFileSync(f, data);
    const t = st.mtimeMs / 1000 + 5; // a distinct mtime even on coarse clocks
    fs.utimesSync(f, t, t);
  };
  const w2 = path.join(m, 'model-00002-of-00002.safetensors');
  const w2bytes = fs.readFileSync(w2);
  const changed = Buffer.from(w2bytes);
  changed[999] ^= 1;
  touch(w2, changed);
  const fpW = modelFingerprint(m, settings, cache);
  assert.notEqual(fpW, fp, 'one weight byte changes it');
  touch(w2, w2bytes);
  assert.equal(modelFingerprint(m, settings, cache), fp);
  touch(path.join(m, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE' }, x: 1 }));
  const fpT = modelFingerprint(m, settings, cache);
  assert.notEqual(fpT, fp);
  touch(path.join(m, 'config.json'), JSON.stringify({ model_type: 'llama', hidden_size: 65 }));
  assert.notEqual(modelFingerprint(m, settings, cache), fpT);
  assert.throws(() => modelFingerprint(tmpDir(), settings), /config\.json/);
  assert.throws(() => canonicalJson({ a: NaN }), /finite/);
  assert.equal(canonicalJson({ b: [1, { d: 1, c: 'x' }], a: true, u: undefined }), '{"a":true,"b":[1,{"c":"x","d":1}]}');
});

test('model fingerprint: weight digests are cached on disk by path + size + mtime', () => {
  const m = fakeModel();
  const cache = tmpDir();
  const settings = { window: 64 };
  const fp = modelFingerprint(m, settings, cache);
  const cacheFile = path.join(cache, 'weights-digest.json');
  const saved = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as { entries: Record<string, { sha256: string }> };
  const w1 = path.join(m, 'model-00001-of-00002.safetensors');
  assert.equal(saved.entries[w1].sha256, createHash('sha256').update(fs.readFileSync(w1)).digest('hex'));
  // Prove the cache is consulted: a planted digest changes the result while the stat key matches...
  saved.entries[w1].sha256 = '0'.repeat(64);
  fs.writeFileSync(cacheFile, JSON.stringify(saved));
  const code = `const k=require(${JSON.stringify(path.resolve(__dirname, '../../engine/kvstore.js'))});process.stdout.write(k.modelFingerprint(process.argv[1],{window:64},process.argv[2]))`;
  const fresh = (): string => execFileSync(process.execPath, ['-e', code, m, cache], { encoding: 'utf8' });
  assert.notEqual(fresh(), fp, 'a new process trusts the on-disk digest');
  // ...and is ignored once the file's mtime changes.
  const t = fs.statSync(w1).mtimeMs / 1000 + 10;
  fs.utimesSync(w1, t, t);
  assert.equal(fresh(), fp);
  // A corrupt cache file is ignored and rewritten.
  fs.writeFileSync(cacheFile, '{not json');
  assert.equal(fresh(), fp);
  assert.doesNotThrow(() => JSON.parse(fs.readFileSync(cacheFile, 'utf8')));
});

test('defaultCacheDir follows XDG_CACHE_HOME, else ~/.cache/attend', () => {
  const saved = process.env.XDG_CACHE_HOME;
  try {
    process.env.XDG_CACHE_HOME = '/some/cache';
    assert.equal(defaultCacheDir(), path.join('/some/cache', 'attend'));
    delete process.env.XDG_CACHE_HOME;
    assert.equal(defaultCacheDir(), path.join(os.homedir(), '.cache', 'attend'));
  } finally {
    if (saved === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = saved;
  }
});

/** A summary table of `n` blocks: each block's representative keys, laid out per layer as (nKvHeads, n * count, d). */
function makeTable(n: number): { ids: Int32Array; table: SummaryTable; key: string } {
  const { blocks: bs, hashes } = blocks(n);
  const count = Math.min(DEFAULT_SUMMARY_KEYS, L);
  const { nKvHeads, headDim: d } = GEO;
  const keys = Array.from({ length: GEO.nLayers }, (_, l) => {
    const out = new Float32Array(nKvHeads * n * count * d);
    bs.forEach((b, i) => {
      const sum = representativeKeys(b.keys[l], nKvHeads, L, d, count);
      for (let g = 0; g < nKvHeads; g++) out.set(sum.keys.subarray(g * count * d, (g + 1) * count * d), (g * n + i) * count * d);
    });
    return out;
  });
  const ids = new Int32Array(n * L);
  bs.forEach((b, i) => ids.set(b.tokenIds, i * L));
  return { ids, table: { blocks: n, blockTokens: L, count, keys }, key: summaryTableKey(hashes[n - 1]) };
}

test('summary table: exact round trip, counted and evicted like blocks, removed by clear', () => {
  const dir = tmpDir();
  const { store, warnings } = openStore(dir);
  const { ids, table, key } = makeTable(5);
  assert.equal(store.writeSummaryTable(key, ids, table), true);
  const file = store.tablePathFor(key);
  assert.match(path.basename(file), /^[0-9a-f]{64}\.kvs$/);
  const got = openStore(dir).store.readSummaryTable(key, ids);
  assert.ok(got);
  assert.deepEqual(
    { blocks: got.blocks, blockTokens: got.blockTokens, count: got.count },
    { blocks: 5, blockTokens: L, count: table.count },
  );
  got.keys.forEach((k, l) => assert.deepEqual(k, table.keys[l], `layer ${l}`));
  assert.equal(store.stats().entries, 1);
  assert.equal(store.stats().bytes, fs.statSync(file).size);
  // A key that is not 64 hex digits is refused, never a path.
  assert.equal(store.readSummaryTable('../x', ids), null);
  assert.match(warnings.at(-1)!, /refused to read summary table key/);
  assert.throws(() => store.writeSummaryTable(key, ids.subarray(1), table), /token ids/);
  store.clear();
  assert.equal(fs.existsSync(file), false);
});

test('summary table: a damaged, truncated, foreign-version or other-token file reads as absent, warned and removed', () => {
  const cases: [string, (buf: Buffer) => Buffer, RegExp, (ids: Int32Array) => Int32Array][] = [
    ['flipped key byte', (b) => ((b[b.length - 40] ^= 1), b), /checksum mismatch/, (ids) => ids],
    ['truncated', (b) => b.subarray(0, b.length - 7), /size mismatch/, (ids) => ids],
    ['foreign version', (b) => (b.writeUInt32LE(99, 8), resum(b)), /foreign summary table version 99/, (ids) => ids],
    ['bad magic', (b) => (b.write('XXXX', 0, 'latin1'), b), /bad magic/, (ids) => ids],
    ['other model', (b) => (b.write(OTHER_FP, 16, 'latin1'), resum(b)), /model fingerprint/, (ids) => ids],
    ['other tokens', (b) => b, /token ids differ .* at index 3/, (ids) => ids.map((v, i) => (i === 3 ? v + 1 : v))],
  ];
  for (const [what, damage, re, expect] of cases) {
    const dir = tmpDir();
    const { ids, table, key } = makeTable(3);
    assert.equal(openStore(dir).store.writeSummaryTable(key, ids, table), true);
    const { store, warnings } = openStore(dir);
    const file = store.tablePathFor(key);
    fs.writeFileSync(file, damage(fs.readFileSync(file)));
    assert.equal(store.readSummaryTable(key, expect(ids)), null, what);
    assert.equal(warnings.length, 1, `${what}: ${JSON.stringify(warnings)}`);
    assert.match(warnings[0], re, what);
    assert.ok(warnings[0].includes(file), `${what}: the warning names the file`);
    assert.equal(fs.existsSync(file), false, `${what}: removed`);
  }
});

test('block checksums are zlib CRC-32, and the table fallback computes the same, continued or whole', () => {
  const check = Buffer.from('123456789', 'latin1');
  assert.equal(crc32(check), 0xcbf43926); // the CRC-32 check value
  assert.equal(crc32Table(check), 0xcbf43926);
  const data = Buffer.alloc(70001);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  assert.equal(crc32Table(data), crc32(data));
  for (const cut of [0, 1, 4096, 70000]) {
    assert.equal(crc32(data.subarray(cut), crc32(data.subarray(0, cut))), crc32(data), `continued at ${cut}`);
    assert.equal(crc32Table(data.subarray(cut), crc32Table(data.subarray(0, cut))), crc32(data), `table, continued at ${cut}`);
  }
});

test("a model folder's document encodings count against the cap, go least recently used first, and clear removes them", () => {
  const dir = tmpDir();
  const probe = openStore(dir).store;
  const encDir = path.join(probe.modelDir, ENCODINGS_DIR);
  const tok = loadTokenizer(fixturePath('tiny-llama'));
  const texts = ['The first note of the day. '.repeat(30), 'Another note, later on. '.repeat(30)];
  new EncodingCache(tok, encDir).encode(texts[0]);
  new EncodingCache(tok, encDir).encode(texts[1]);
  const files = fs.readdirSync(encDir).filter((f) => f.endsWith('.enc'));
  assert.equal(files.length, 2);
  const fileOf = (t: string) => path.join(encDir, `${createHash('sha256').update(t, 'utf8').digest('hex')}.enc`);
  const encBytes = texts.reduce((n, t) => n + fs.statSync(fileOf(t)).size, 0);
  assert.deepEqual(probe.stats(), { entries: 2, bytes: encBytes });
  // The second encoding was written last, but the first is used last: a cache reading it from disk touches it.
  const now = Date.now() / 1000;
  fs.utimesSync(fileOf(texts[0]), now - 100, now - 100);
  fs.utimesSync(fileOf(texts[1]), now - 50, now - 50);
  const reader = new EncodingCache(tok, encDir);
  assert.equal(reader.peek(texts[0])?.ids.length, tok.count(texts[0]));
  assert.equal(reader.peek('a text never encoded'), null);
  assert.ok(fs.statSync(fileOf(texts[0])).mtimeMs > fs.statSync(fileOf(texts[1])).mtimeMs);
  // Two blocks push the store one byte past its cap: the least recently used file, the second encoding, goes.
  const size = blockFileBytes(GEO, L);
  const { store, warnings } = openStore(dir, { maxBytes: 2 * size + encBytes - 1 });
  const { blocks: bs, hashes } = blocks(2);
  for (const i of [0, 1]) assert.equal(store.write(hashes[i], bs[i]), true);
  assert.equal(fs.existsSync(fileOf(texts[1])), false);
  assert.equal(fs.existsSync(fileOf(texts[0])), true);
  assert.ok(store.has(hashes[0]) && store.has(hashes[1]));
  assert.deepEqual(warnings, []);
  store.clear();
  assert.equal(fs.existsSync(encDir), false);
});
