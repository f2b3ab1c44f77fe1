// Representative keys of a KV block, stored at the front of its file so that block memory can rank every stored block
// by reading a few KiB each instead of the whole block (InfLLM keeps "a few representative tokens" per block too).

/** Representative keys per layer and KV head that a block file carries by default. */
export const DEFAULT_SUMMARY_KEYS = 8;

/** The representative keys of one layer: `count` per KV head, with their offsets inside the block. */
export interface LayerSummary {
  /** (nKvHeads, count) offsets into the block, 0-based. */
  readonly offsets: Int32Array;
  /** (nKvHeads, count, headDim) the keys at those offsets, as stored (rotated at their own positions). */
  readonly keys: Float32Array;
}

export interface BlockSummary {
  /** Absolute position of the block's first token. */
  readonly start: number;
  /** Tokens in the block. */
  readonly length: number;
  /** Representative keys per KV head (≤ length). */
  readonly count: number;
  readonly layers: readonly LayerSummary[];
}

/**
 * Picks `count` keys per KV head that cover the block's key space: the largest-norm key first, then repeatedly the key
 * farthest (Euclidean) from every key picked so far. A question's query finds a block through the keys it would
 * attend to; in a block of filler one distinctive line (a needle) has keys far from the rest, which this keeps, while
 * many near-identical filler keys are represented by one. Deterministic (ties go to the earliest offset).
 * keys: (nKvHeads, len, headDim).
 */
export function representativeKeys(keys: Float32Array, nKvHeads: number, len: number, headDim: number, count: number): LayerSummary {
  const n = Math.min(count, len);
  const offsets = new Int32Array(nKvHeads * n);
  const out = new Float32Array(nKvHeads * n * headDim);
  const dist = new Float64Array(len);
  for (let h = 0; h < nKvHeads; h++) {
    const base = h * len * headDim;
    let pick = 0;
    let best = -1;
    for (let t = 0; t < len; t++) {
      let s = 0;
      for (let i = 0; i < headDim; i++) s += keys[base + t * headDim + i] ** 2;
      if (s > best) {
        best = s;
        pick = t;
      }
    }
    dist.fill(Infinity);
    for (let j = 0; j < n; j++) {
      offsets[h * n + j] = pick;
      const kp = base + pick * headDim;
      out.set(keys.subarray(kp, kp + headDim), (h * n + j) * headDim);
      let next = 0;
      best = -1;
      for (let t = 0; t < len; t++) {
        let s = 0;
        const kt = base + t * headDim;
        for (let i = 0; i < headDim; i++) s += (keys[kt + i] - keys[kp + i]) ** 2;
        if (s < dist[t]) dist[t] = s;
        if (dist[t] > best) {
          best = dist[t];
          next = t;
        }
      }
      pick = next;
    }
  }
  return { offsets, keys: out };
}
