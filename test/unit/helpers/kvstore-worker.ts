// Child process for the kvstore concurrency test: writes and reads the same deterministic blocks as its siblings, and
// reports (over IPC) how many reads returned data that differs from what any writer stores under that key.
// Also exports the deterministic block generator, so the test checks the surviving files against the same content.
import { KvBlockStore, chainHash, rootHash, type KvBlock, type KvGeometry } from '../../../engine/kvstore';
import { rng } from './random-model';

export interface WorkerArgs {
  readonly dir: string;
  readonly fingerprint: string;
  readonly geometry: KvGeometry;
  readonly blockTokens: number;
  readonly nBlocks: number;
  readonly iterations: number;
  readonly maxBytes: number;
  readonly seed: number;
}

export interface WorkerReport {
  readonly id: number;
  readonly writes: number;
  readonly writeFailures: number;
  readonly reads: number;
  readonly hits: number;
  readonly wrong: number;
  readonly warnings: string[];
  readonly error: string | null;
}

/** Block i of the shared test prompt: same content in every process. */
export function makeBlock(geometry: KvGeometry, blockTokens: number, i: number): KvBlock {
  const r = rng(1000 + i);
  const per = geometry.nKvHeads * blockTokens * geometry.headDim;
  const layer = () => Float32Array.from({ length: per }, () => r() * 2 - 1);
  return {
    tokenIds: Int32Array.from({ length: blockTokens }, () => Math.floor(r() * 50000)),
    positions: Int32Array.from({ length: blockTokens }, (_, j) => i * blockTokens + j),
    keys: Array.from({ length: geometry.nLayers }, layer),
    values: Array.from({ length: geometry.nLayers }, layer),
  };
}

/** Chain keys of blocks 0..n-1. */
export function makeHashes(fingerprint: string, blocks: readonly KvBlock[]): string[] {
  const out: string[] = [];
  let h = rootHash(fingerprint);
  for (const b of blocks) out.push((h = chainHash(h, b.tokenIds)));
  return out;
}

export function sameBlock(a: KvBlock, b: KvBlock): boolean {
  const eq = (x: ArrayBufferView, y: ArrayBufferView) =>
    Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(Buffer.from(y.buffer, y.byteOffset, y.byteLength));
  return (
    eq(a.tokenIds, b.tokenIds) &&
    eq(a.positions, b.positions) &&
    a.keys.length === b.keys.length &&
    a.values.length === b.values.length &&
    a.keys.every((k, l) => eq(k, b.keys[l])) &&
    a.values.every((v, l) => eq(v, b.values[l]))
  );
}

function main(): void {
  const id = Number(process.argv[2]);
  const args = JSON.parse(process.argv[3]) as WorkerArgs;
  const warnings: string[] = [];
  let writes = 0;
  let writeFailures = 0;
  let reads = 0;
  let hits = 0;
  let wrong = 0;
  let error: string | null = null;
  try {
    const store = new KvBlockStore(args.dir, {
      maxBytes: args.maxBytes,
      geometry: args.geometry,
      fingerprint: args.fingerprint,
      warn: (m) => warnings.push(m),
    });
    const blocks = Array.from({ length: args.nBlocks }, (_, i) => makeBlock(args.geometry, args.blockTokens, i));
    const hashes = makeHashes(args.fingerprint, blocks);
    const r = rng(args.seed + id * 7919);
    for (let it = 0; it < args.iterations; it++) {
      const i = Math.floor(r() * args.nBlocks);
      if (r() < 0.5) {
        writes++;
        if (!store.write(hashes[i], blocks[i])) writeFailures++;
      } else {
        reads++;
        const got = store.read(hashes[i], blocks[i].tokenIds);
        if (got) {
          hits++;
          if (!sameBlock(got, blocks[i])) wrong++;
        }
      }
    }
  } catch (e) {
    error = e instanceof Error ? (e.stack ?? e.message) : String(e);
  }
  const report: WorkerReport = { id, writes, writeFailures, reads, hits, wrong, warnings, error };
  process.send!(report, () => process.exit(0));
}

if (require.main === module) main();
