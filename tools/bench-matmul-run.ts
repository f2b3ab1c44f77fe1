// The machine's fp32 limit as onnxruntime sees it: one large MatMul (M x K @ K x N, weight as an initializer, like the
// engine's projections) timed several times in a fresh process; prints one JSON line with the best and median GFLOP/s.
// usage: node out/tools/bench-matmul-run.js [--m 1024] [--k 2048] [--n 2048] [--threads N] [--reps 10]
import * as ort from 'onnxruntime-node';
import { parseArgs } from 'node:util';
import { GraphBuilder } from '../engine/graph/onnx';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      m: { type: 'string', default: '1024' },
      k: { type: 'string', default: '2048' },
      n: { type: 'string', default: '2048' },
      threads: { type: 'string' },
      reps: { type: 'string', default: '10' },
    },
  });
  const [M, K, N] = [Number(values.m), Number(values.k), Number(values.n)];
  const g = new GraphBuilder();
  g.input('x', 'float32', [M, K]);
  const w = new Float32Array(K * N);
  for (let i = 0; i < w.length; i++) w[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
  g.node({ op: 'MatMul', inputs: ['x', g.initF32('w', [K, N], w)], outputs: ['y'] });
  g.output('y', 'float32', [M, N]);
  const session = await ort.InferenceSession.create(g.toBytes('matmul'), {
    graphOptimizationLevel: 'all',
    ...(values.threads ? { intraOpNumThreads: Number(values.threads) } : {}),
    interOpNumThreads: 1,
  });
  const x = new ort.Tensor(
    'float32',
    Float32Array.from({ length: M * K }, (_, i) => (i % 7) / 7),
    [M, K],
  );
  await session.run({ x }); // warm-up: prepacking, thread pool
  const gflops: number[] = [];
  for (let r = 0; r < Number(values.reps); r++) {
    const t0 = performance.now();
    await session.run({ x });
    gflops.push((2 * M * K * N) / ((performance.now() - t0) / 1000) / 1e9);
  }
  await session.release();
  const sorted = [...gflops].sort((a, b) => a - b);
  process.stdout.write(
    JSON.stringify({
      m: M,
      k: K,
      n: N,
      bestGflops: sorted[sorted.length - 1],
      medianGflops: sorted[Math.floor((sorted.length - 1) / 2)],
      gflops,
    }) + '\n',
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
