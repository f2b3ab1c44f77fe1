// Block memory beyond the window (InfLLM-style): score blocks that left the window with the question's queries,
// and bring the best ones back next to the sinks and the local window.
import * as ort from 'onnxruntime-node';
import type { ModelConfig } from './types';
import { GraphBuilder } from './graph/onnx';
import { ropeInverseFrequencies } from './graph/decoder';
import type { KvShape, SlotBatch } from './runtime/kv';

/** One stored block: prompt positions [start, end) with per-layer keys/values (1, nKvHeads, len, headDim). */
export interface MemoryBlock {
  readonly start: number;
  readonly end: number;
  readonly keys: readonly Float32Array[];
  readonly values: readonly Float32Array[];
}

/** The keys a block is scored by: all of its keys, or its representative ones (block-summary.ts). */
export interface ScoredKeys {
  /** Keys per KV head. */
  readonly count: number;
  /** Per layer, (nKvHeads, count, headDim), as stored (rotated at their own positions). */
  readonly keys: readonly Float32Array[];
  /**
   * Positions to move every key by before scoring (RoPE re-rotation, as rerotateKeys): where the block would sit minus
   * where it was computed. BlockScorer rotates inside its graph, so stored keys are scored without a copy in JS.
   */
  readonly shift?: number;
}

/** Keys of equal-sized blocks laid out together: per layer (nKvHeads, blocks * count, headDim), one shift per block. */
export interface KeyTable {
  /** Keys per block and KV head. */
  readonly count: number;
  readonly keys: readonly Float32Array[];
  /** Per block, positions to move its keys by before scoring (see ScoredKeys.shift). */
  readonly shifts: ArrayLike<number>;
}

/** cos/sin of one shift per RoPE frequency: rotating by `shift` is x1·cos − x2·sin, x2·cos + x1·sin. */
function shiftRotation(shift: number, invFreq: Float32Array): { cos: Float64Array; sin: Float64Array } {
  const cos = new Float64Array(invFreq.length);
  const sin = new Float64Array(invFreq.length);
  for (let i = 0; i < invFreq.length; i++) {
    cos[i] = Math.cos(shift * invFreq[i]);
    sin[i] = Math.sin(shift * invFreq[i]);
  }
  return { cos, sin };
}

/**
 * Block relevance as the attention mass full attention would give it: for every layer, query head and question token,
 * the block's share of exp(q·k/√d) among all candidate blocks, summed. Blocks are visited once, one at a time, so
 * memory stays flat however many there are.
 * `queries[l]` is (nQuestion, nHeads * headDim) as the graph exports them (rotated at the question's positions; the
 * keys carry their own rotation, so q·k sees the true relative distance, as full attention would).
 */
export function scoreBlocks(
  cfg: ModelConfig,
  queries: readonly Float32Array[],
  nQuestion: number,
  blockCount: number,
  load: (i: number) => ScoredKeys | null,
  headWeights: Float64Array | null = null,
): Float64Array {
  const { nLayers, nHeads, nKvHeads, headDim: d } = cfg;
  const group = nHeads / nKvHeads;
  const scale = 1 / Math.sqrt(d);
  const cells = nLayers * nHeads * nQuestion;
  // log-sum-exp of each (block, layer, head, token) cell, then normalised per cell over blocks.
  const lse = new Float64Array(blockCount * cells).fill(-Infinity);
  const invFreq = ropeInverseFrequencies(cfg);
  let dots = new Float64Array(0);
  for (let b = 0; b < blockCount; b++) {
    const block = load(b);
    if (!block) continue;
    const len = block.count;
    if (dots.length < len) dots = new Float64Array(len);
    const shift = block.shift ?? 0;
    const from = new Int32Array(len);
    const to = new Int32Array(len).fill(shift);
    for (let l = 0; l < nLayers; l++) {
      const keys = shift ? rerotateKeys(block.keys[l], { nLayers, nKvHeads, headDim: d }, from, to, invFreq) : block.keys[l];
      const q = queries[l];
      for (let h = 0; h < nHeads; h++) {
        const kvBase = Math.floor(h / group) * len * d;
        for (let t = 0; t < nQuestion; t++) {
          const qBase = (t * nHeads + h) * d;
          let max = -Infinity;
          for (let k = 0; k < len; k++) {
            let dot = 0;
            const kb = kvBase + k * d;
            for (let i = 0; i < d; i++) dot += q[qBase + i] * keys[kb + i];
            dots[k] = dot * scale;
            if (dots[k] > max) max = dots[k];
          }
          let sum = 0;
          for (let k = 0; k < len; k++) sum += Math.exp(dots[k] - max);
          lse[b * cells + (l * nHeads + h) * nQuestion + t] = max + Math.log(sum);
        }
      }
    }
  }
  return sharesOverBlocks(lse, cells, blockCount, headWeights, nQuestion);
}

/**
 * lse laid out (block, cell), cell = (layer * nHeads + head) * nQuestion + token: each cell's softmax over blocks,
 * summed over cells (weighted by the cell's head weight, when given) = each block's attention mass.
 */
function sharesOverBlocks(
  lse: Float64Array,
  cells: number,
  blockCount: number,
  headWeights: Float64Array | null,
  nQuestion: number,
): Float64Array {
  const scores = new Float64Array(blockCount);
  for (let c = 0; c < cells; c++) {
    const weight = headWeights ? headWeights[Math.floor(c / nQuestion)] : 1;
    if (weight === 0) continue;
    let max = -Infinity;
    for (let b = 0; b < blockCount; b++) max = Math.max(max, lse[b * cells + c]);
    if (max === -Infinity) continue;
    let total = 0;
    for (let b = 0; b < blockCount; b++) total += Math.exp(lse[b * cells + c] - max);
    for (let b = 0; b < blockCount; b++) scores[b] += (weight * Math.exp(lse[b * cells + c] - max)) / total;
  }
  return scores;
}

/**
 * The same scores as scoreBlocks, computed by onnxruntime: per layer one batched MatMul of the question's queries
 * against the keys of a group of blocks, then ReduceLogSumExp per block. Blocks of equal length only; groups of
 * `groupBlocks` keep memory flat however long the documents are.
 */
export class BlockScorer {
  private constructor(
    private readonly cfg: ModelConfig,
    private readonly session: ort.InferenceSession,
    private readonly invFreq: Float32Array,
  ) {}

  static async create(cfg: ModelConfig): Promise<BlockScorer> {
    const g = new GraphBuilder();
    const q = g.input('q', 'float32', [cfg.nKvHeads, 'rows', cfg.headDim]); // pre-scaled queries, grouped per kv head
    const k = g.input('k', 'float32', [cfg.nKvHeads, 'keys', cfg.headDim]);
    // Each key's shift as cos/sin per frequency (keys, headDim / 2): the keys are rotated here, not copied in JS.
    const cos = g.input('cos', 'float32', ['keys', cfg.headDim / 2]);
    const sin = g.input('sin', 'float32', ['keys', cfg.headDim / 2]);
    const shape = g.input('lse_shape', 'int64', [4]); // (nKvHeads, rows, blocks, blockLen)
    const axis = g.initI64('c_axis', [2]);
    const k1 = g.op('Slice', [k, g.initI64('c_zero', [0]), g.initI64('c_half', [cfg.headDim / 2]), axis]);
    const k2 = g.op('Slice', [k, g.initI64('c_half2', [cfg.headDim / 2]), g.initI64('c_d', [cfg.headDim]), axis]);
    const r1 = g.op('Sub', [g.op('Mul', [k1, cos]), g.op('Mul', [k2, sin])]);
    const r2 = g.op('Add', [g.op('Mul', [k2, cos]), g.op('Mul', [k1, sin])]);
    const rotated = g.op('Concat', [r1, r2], { axis: 2 });
    const dots = g.op('MatMul', [q, g.op('Transpose', [rotated], { perm: [0, 2, 1] })]);
    const lse = 'lse';
    g.node({ op: 'ReduceLogSumExp', inputs: [g.op('Reshape', [dots, shape])], outputs: [lse], attrs: { axes: [3], keepdims: 0 } });
    g.output(lse, 'float32', [cfg.nKvHeads, 'rows', 'blocks']);
    // One thread: a scorer run is a few small matmuls, too short for a second thread to pay, and an idle thread pool
    // spins after each run, taking a core from the block reads that follow (Decoder's SHORT_STEP_TOKENS).
    const session = await ort.InferenceSession.create(g.toBytes('attend-block-scorer'), {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
    });
    return new BlockScorer(cfg, session, ropeInverseFrequencies(cfg));
  }

  async score(
    queries: readonly Float32Array[],
    nQuestion: number,
    blockCount: number,
    load: (i: number) => ScoredKeys | null,
    groupBlocks = 32,
    headWeights: Float64Array | null = null,
  ): Promise<Float64Array> {
    const { nLayers, nHeads, nKvHeads, headDim: d } = this.cfg;
    const cells = nLayers * nHeads * nQuestion;
    const qTensors = this.queryTensors(queries, nQuestion);
    const lse = new Float64Array(blockCount * cells).fill(-Infinity);
    for (let b0 = 0; b0 < blockCount; b0 += groupBlocks) {
      const blocks: { b: number; blk: ScoredKeys }[] = [];
      for (let b = b0; b < Math.min(blockCount, b0 + groupBlocks); b++) {
        const blk = load(b);
        if (blk) blocks.push({ b, blk });
      }
      // One scorer run per key count (a block cut short has fewer keys than the rest).
      for (const len of new Set(blocks.map(({ blk }) => blk.count))) {
        const same = blocks.filter(({ blk }) => blk.count === len);
        const nb = same.length;
        const keys = Array.from({ length: nLayers }, (_, l) => {
          const out = new Float32Array(nKvHeads * nb * len * d);
          same.forEach(({ blk }, i) => {
            for (let g = 0; g < nKvHeads; g++) out.set(blk.keys[l].subarray(g * len * d, (g + 1) * len * d), (g * nb + i) * len * d);
          });
          return out;
        });
        await this.runGroup(qTensors, nQuestion, { count: len, keys, shifts: same.map(({ blk }) => blk.shift ?? 0) }, (i, cell, v) => {
          lse[same[i].b * cells + cell] = v;
        });
      }
    }
    return sharesOverBlocks(lse, cells, blockCount, headWeights, nQuestion);
  }

  /**
   * The same scores for blocks whose keys already lie together: per layer (nKvHeads, blocks * count, headDim), block
   * i at rows i * count .. (i + 1) * count of every head (a summary table, KvBlockStore.readSummaryTable), one shift
   * per block. One scorer run per layer, no copy of the keys. With `rows`, only those blocks are ranked.
   */
  async scoreTable(
    queries: readonly Float32Array[],
    nQuestion: number,
    table: KeyTable,
    headWeights: Float64Array | null = null,
    rows: readonly number[] | null = null,
  ): Promise<Float64Array> {
    const { nLayers, nHeads } = this.cfg;
    const cells = nLayers * nHeads * nQuestion;
    // `rows`: the table's blocks that compete (scores in that order); the others are scored with them, then left out.
    const pick = rows ?? Array.from(table.shifts, (_, i) => i);
    const at = new Int32Array(table.shifts.length).fill(-1);
    pick.forEach((row, j) => (at[row] = j));
    const lse = new Float64Array(pick.length * cells).fill(-Infinity);
    await this.runGroup(this.queryTensors(queries, nQuestion), nQuestion, table, (i, cell, v) => {
      if (at[i] >= 0) lse[at[i] * cells + cell] = v;
    });
    return sharesOverBlocks(lse, cells, pick.length, headWeights, nQuestion);
  }

  /**
   * Scores blocks of zeros through both entry points, at the sizes an ask uses (a summary table of `tableBlocks`, a
   * shortlist of `shortlist` whole blocks): a session's first run at a larger size grows onnxruntime's memory arena,
   * which an ask should not wait for.
   */
  async warmUp(blockTokens: number, summaryKeys: number, tableBlocks: number, shortlist: number): Promise<void> {
    const { nLayers, nHeads, nKvHeads, headDim: d } = this.cfg;
    const queries = Array.from({ length: nLayers }, () => new Float32Array(nHeads * d));
    const keys = (count: number, blocks: number) => Array.from({ length: nLayers }, () => new Float32Array(nKvHeads * blocks * count * d));
    await this.scoreTable(queries, 1, {
      count: summaryKeys,
      keys: keys(summaryKeys, tableBlocks),
      shifts: new Int32Array(tableBlocks).fill(1),
    });
    const one = keys(blockTokens, 1);
    await this.score(queries, 1, shortlist, () => ({ count: blockTokens, keys: one, shift: 1 }));
  }

  /** Queries per layer as (nKvHeads, group * nQuestion, d), pre-scaled: query head h = g * group + j goes to row j * nQuestion + t. */
  private queryTensors(queries: readonly Float32Array[], nQuestion: number): ort.Tensor[] {
    const { nHeads, nKvHeads, headDim: d } = this.cfg;
    const group = nHeads / nKvHeads;
    const rows = group * nQuestion;
    const scale = 1 / Math.sqrt(d);
    return queries.map((qs) => {
      const out = new Float32Array(nKvHeads * rows * d);
      for (let h = 0; h < nHeads; h++) {
        const g = Math.floor(h / group);
        const j = h % group;
        for (let t = 0; t < nQuestion; t++) {
          const src = (t * nHeads + h) * d;
          const dst = (g * rows + j * nQuestion + t) * d;
          for (let i = 0; i < d; i++) out[dst + i] = qs[src + i] * scale;
        }
      }
      return new ort.Tensor('float32', out, [nKvHeads, rows, d]);
    });
  }

  /** Runs the scorer over one group of blocks; `put(block, cell, lse)` receives every (block, cell) log-sum-exp. */
  private async runGroup(
    qTensors: readonly ort.Tensor[],
    nQuestion: number,
    group: KeyTable,
    put: (block: number, cell: number, lse: number) => void,
  ): Promise<void> {
    const { nLayers, nHeads, nKvHeads, headDim: d } = this.cfg;
    const perKv = nHeads / nKvHeads;
    const rows = perKv * nQuestion;
    const { count: len, shifts } = group;
    const nb = shifts.length;
    const half = d / 2;
    const cos = new Float32Array(nb * len * half).fill(1);
    const sin = new Float32Array(nb * len * half);
    for (let i = 0; i < nb; i++) {
      if (!shifts[i]) continue;
      const rot = shiftRotation(shifts[i], this.invFreq);
      for (let t = i * len; t < (i + 1) * len; t++) {
        cos.set(rot.cos, t * half);
        sin.set(rot.sin, t * half);
      }
    }
    const cosT = new ort.Tensor('float32', cos, [nb * len, half]);
    const sinT = new ort.Tensor('float32', sin, [nb * len, half]);
    const shapeT = new ort.Tensor('int64', BigInt64Array.from([nKvHeads, rows, nb, len].map(BigInt)), [4]);
    for (let l = 0; l < nLayers; l++) {
      const out = await this.session.run({
        q: qTensors[l],
        k: new ort.Tensor('float32', group.keys[l], [nKvHeads, nb * len, d]),
        cos: cosT,
        sin: sinT,
        lse_shape: shapeT,
      });
      const res = out.lse.data as Float32Array; // (nKvHeads, rows, nb)
      for (let h = 0; h < nHeads; h++) {
        const g = Math.floor(h / perKv);
        const j = h % perKv;
        for (let t = 0; t < nQuestion; t++) {
          const row = (g * rows + j * nQuestion + t) * nb;
          const cell = (l * nHeads + h) * nQuestion + t;
          for (let i = 0; i < nb; i++) put(i, cell, res[row + i]);
        }
      }
    }
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/** Indices of the `k` best blocks, returned in position order. */
export function topBlocks(scores: Float64Array, k: number): number[] {
  return Array.from(scores.keys())
    .filter((b) => scores[b] > 0)
    .sort((a, b) => scores[b] - scores[a])
    .slice(0, k)
    .sort((a, b) => a - b);
}

/**
 * Re-rotates RoPE keys from the positions they were computed at to new ones (rotations compose, so rotating by the
 * difference is exact up to rounding). keys: (1, nKvHeads, len, headDim).
 */
export function rerotateKeys(keys: Float32Array, shape: KvShape, from: Int32Array, to: Int32Array, invFreq: Float32Array): Float32Array {
  const { nKvHeads, headDim: d } = shape;
  const len = from.length;
  const half = d / 2;
  const out = new Float32Array(keys.length);
  // Relocated blocks move every token by the same delta: compute the rotation once per distinct delta.
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  let lastDelta = NaN;
  for (let t = 0; t < len; t++) {
    const delta = to[t] - from[t];
    if (delta !== lastDelta) {
      for (let i = 0; i < half; i++) {
        cos[i] = Math.cos(delta * invFreq[i]);
        sin[i] = Math.sin(delta * invFreq[i]);
      }
      lastDelta = delta;
    }
    for (let i = 0; i < half; i++) {
      const c = cos[i];
      const s = sin[i];
      for (let h = 0; h < nKvHeads; h++) {
        const base = (h * len + t) * d;
        const x1 = keys[base + i];
        const x2 = keys[base + i + half];
        out[base + i] = x1 * c - x2 * s;
        out[base + i + half] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}

/**
 * The chosen blocks as one batch of pinned slots, relocated to consecutive positions ending just before `end`.
 * InfLLM gives memory one position at the edge of the local window; a model trained only on a short window has never
 * seen keys that far away, so the engine places retrieved text right before the question, where training put the
 * answers (those positions may also hold window tokens: attention is over a set of keys, each with its own rotation).
 * If there is no room above the sinks, the blocks keep their own positions.
 */
export function relocatedBatch(
  blocks: readonly MemoryBlock[],
  shape: KvShape,
  invFreq: Float32Array,
  end: number,
  sinks: number,
): SlotBatch {
  const total = blocks.reduce((n, b) => n + (b.end - b.start), 0);
  const first = end - total;
  const relocate = first >= sinks;
  const { nLayers, nKvHeads, headDim } = shape;
  const positions = new Int32Array(total);
  const origins = new Int32Array(total);
  let at = 0;
  for (const b of blocks) {
    for (let p = b.start; p < b.end; p++, at++) {
      origins[at] = p;
      positions[at] = relocate ? first + at : p;
    }
  }
  const concat = (pick: (b: MemoryBlock) => Float32Array): Float32Array => {
    const out = new Float32Array(nKvHeads * total * headDim);
    let t0 = 0;
    for (const b of blocks) {
      const len = b.end - b.start;
      const src = pick(b);
      for (let h = 0; h < nKvHeads; h++) out.set(src.subarray(h * len * headDim, (h + 1) * len * headDim), (h * total + t0) * headDim);
      t0 += len;
    }
    return out;
  };
  const keys: Float32Array[] = [];
  const values: Float32Array[] = [];
  for (let l = 0; l < nLayers; l++) {
    const k = concat((b) => b.keys[l]);
    keys.push(relocate ? rerotateKeys(k, shape, origins, positions, invFreq) : k);
    values.push(concat((b) => b.values[l]));
  }
  return { positions, origins, keys, values };
}
