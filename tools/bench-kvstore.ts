// Throughput of the KV block store: a 32k-token context of a small geometry, written then read back.
// Usage: node out/tools/bench-kvstore.js [dir] [tokens] [nLayers] [nKvHeads] [headDim] [blockTokens]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { KvBlockStore, blockFileBytes, chainHash, rootHash, type KvBlock, type KvGeometry } from '../engine/kvstore';

const [dirArg, tokArg, lArg, hArg, dArg, bArg] = process.argv.slice(2);
const base = dirArg ? path.resolve(dirArg) : os.tmpdir();
const tokens = Number(tokArg ?? 32768);
const geometry: KvGeometry = { nLayers: Number(lArg ?? 4), nKvHeads: Number(hArg ?? 4), headDim: Number(dArg ?? 32) };
const blockTokens = Number(bArg ?? 128);
const dir = fs.mkdtempSync(path.join(base, 'attend-bench-kv-'));
const fingerprint = createHash('sha256').update('bench').digest('hex');

const nBlocks = Math.ceil(tokens / blockTokens);
const per = (len: number) => geometry.nKvHeads * len * geometry.headDim;
const blocks: KvBlock[] = [];
const hashes: string[] = [];
let h = rootHash(fingerprint);
for (let i = 0; i < nBlocks; i++) {
  const len = Math.min(blockTokens, tokens - i * blockTokens);
  const layer = () => Float32Array.from({ length: per(len) }, (_, j) => Math.sin(i * 131 + j));
  const b: KvBlock = {
    tokenIds: Int32Array.from({ length: len }, (_, j) => (i * 7919 + j * 31) % 32000),
    positions: Int32Array.from({ length: len }, (_, j) => i * blockTokens + j),
    keys: Array.from({ length: geometry.nLayers }, layer),
    values: Array.from({ length: geometry.nLayers }, layer),
  };
  blocks.push(b);
  hashes.push((h = chainHash(h, b.tokenIds)));
}
const bytes = blocks.reduce((s, b) => s + blockFileBytes(geometry, b.tokenIds.length), 0);
const store = new KvBlockStore(dir, { maxBytes: 4 * bytes, geometry, fingerprint });
const mb = bytes / (1 << 20);

let t = process.hrtime.bigint();
for (let i = 0; i < nBlocks; i++) if (!store.write(hashes[i], blocks[i])) throw new Error('write failed');
const writeS = Number(process.hrtime.bigint() - t) / 1e9;
t = process.hrtime.bigint();
for (let i = 0; i < nBlocks; i++) if (!store.read(hashes[i], blocks[i].tokenIds)) throw new Error('read miss');
const readS = Number(process.hrtime.bigint() - t) / 1e9;
t = process.hrtime.bigint();
let hashTokens = rootHash(fingerprint);
for (const b of blocks) hashTokens = chainHash(hashTokens, b.tokenIds);
const chainS = Number(process.hrtime.bigint() - t) / 1e9;

console.log(
  JSON.stringify({
    dir: base,
    tokens,
    geometry,
    blockTokens,
    blocks: nBlocks,
    MiB: +mb.toFixed(1),
    write: { s: +writeS.toFixed(3), MiBps: +(mb / writeS).toFixed(0), msPerBlock: +((writeS * 1000) / nBlocks).toFixed(2) },
    read: { s: +readS.toFixed(3), MiBps: +(mb / readS).toFixed(0), msPerBlock: +((readS * 1000) / nBlocks).toFixed(2) },
    chainHashAllBlocksMs: +(chainS * 1000).toFixed(2),
  }),
);
fs.rmSync(dir, { recursive: true, force: true });
