// The in-memory KV cache: immutable snapshots of (slot positions, per-layer keys/values), bounded by sinks + window.
import type { AttentionSpec } from '../types';

/**
 * One cache state. Keys/values per layer are laid out (1, nKvHeads, nSlots, headDim) — the shape GQA takes as
 * past_key/past_value. Slot i holds the token at absolute position `positions[i]`; positions are increasing.
 * `pinned[i]` marks slots that stay visible regardless of the window (retrieved memory blocks).
 * States are never mutated: a step returns a new state, so keeping an old reference is the rollback.
 */
export interface KvState {
  readonly nSlots: number;
  /** Positions the keys were rotated with and the mask reasons about. */
  readonly positions: Int32Array;
  /** Prompt position each slot's token came from; differs from `positions` only for relocated memory blocks. */
  readonly origins: Int32Array;
  readonly pinned: Uint8Array;
  readonly keys: readonly Float32Array[];
  readonly values: readonly Float32Array[];
  /** Absolute position of the next token to be fed. */
  readonly nextPos: number;
}

export interface KvShape {
  readonly nLayers: number;
  readonly nKvHeads: number;
  readonly headDim: number;
}

/** Slots [from, to) of every head of a (nKvHeads, len, headDim) key or value array, as a new (nKvHeads, to - from, headDim) one. */
export function headSlots(a: Float32Array, nKvHeads: number, len: number, from: number, to: number, headDim: number): Float32Array {
  const n = to - from;
  const out = new Float32Array(nKvHeads * n * headDim);
  for (let h = 0; h < nKvHeads; h++) out.set(a.subarray((h * len + from) * headDim, (h * len + to) * headDim), h * n * headDim);
  return out;
}

export function emptyState(shape: KvShape, nextPos = 0): KvState {
  const none = Array.from({ length: shape.nLayers }, () => new Float32Array(0));
  return {
    nSlots: 0,
    positions: new Int32Array(0),
    origins: new Int32Array(0),
    pinned: new Uint8Array(0),
    keys: none,
    values: none,
    nextPos,
  };
}

/** True when a query at position q may attend to a key at position k (the rule in AttentionSpec). */
export function visible(spec: AttentionSpec, q: number, k: number, pinned = false): boolean {
  if (k > q) return false;
  return pinned || spec.window === null || q - k < spec.window || k < spec.sinks;
}

/** `keep` as runs of consecutive slots: [first slot, index in keep, length]. Eviction keeps sinks + one long suffix. */
function slotRuns(keep: readonly number[]): [number, number, number][] {
  const runs: [number, number, number][] = [];
  for (let j = 0; j < keep.length; j++) {
    const last = runs[runs.length - 1];
    if (last && keep[j] === last[0] + last[2]) last[2]++;
    else runs.push([keep[j], j, 1]);
  }
  return runs;
}

/** Copies the chosen slots of a (1, nKv, nSlots, headDim) buffer into a new one, one copy per run of slots. */
function gatherSlots(src: Float32Array, shape: KvShape, nSlots: number, keep: readonly number[], runs = slotRuns(keep)): Float32Array {
  const { nKvHeads, headDim } = shape;
  const out = new Float32Array(nKvHeads * keep.length * headDim);
  for (let h = 0; h < nKvHeads; h++) {
    const srcHead = h * nSlots * headDim;
    const dstHead = h * keep.length * headDim;
    for (const [slot, j, len] of runs) {
      const s = srcHead + slot * headDim;
      out.set(src.subarray(s, s + len * headDim), dstHead + j * headDim);
    }
  }
  return out;
}

/** A new state holding only the listed slots (in order). */
export function selectSlots(state: KvState, shape: KvShape, keep: readonly number[]): KvState {
  if (keep.length === state.nSlots) return state;
  const runs = slotRuns(keep);
  return {
    nSlots: keep.length,
    positions: Int32Array.from(keep, (i) => state.positions[i]),
    origins: Int32Array.from(keep, (i) => state.origins[i]),
    pinned: Uint8Array.from(keep, (i) => state.pinned[i]),
    keys: state.keys.map((k) => gatherSlots(k, shape, state.nSlots, keep, runs)),
    values: state.values.map((v) => gatherSlots(v, shape, state.nSlots, keep, runs)),
    nextPos: state.nextPos,
  };
}

/**
 * Drops every slot that no future query (position >= nextPos) can see: what stays is sinks + the last window - 1 + pinned.
 * With `slack`, a state holding at most that many invisible slots is returned as it is: the attention mask hides them
 * (bias -Infinity, or GQA's local window, which counts back over contiguous slots), so results are identical, and a
 * short step (a question, one decoded token) skips copying the whole cache. Eviction then happens on the step that
 * pushes the count past `slack`, so the cache stays bounded by sinks + window - 1 + pinned + slack.
 */
export function evictInvisible(state: KvState, shape: KvShape, spec: AttentionSpec, slack = 0): KvState {
  if (spec.window === null) return state;
  const keep: number[] = [];
  for (let i = 0; i < state.nSlots; i++) {
    if (visible(spec, state.nextPos, state.positions[i], state.pinned[i] === 1)) keep.push(i);
  }
  if (state.nSlots - keep.length <= slack) return state;
  return selectSlots(state, shape, keep);
}

/** Invisible slots a decoder step may leave in the cache (see evictInvisible): a quarter window, at most 256. */
export function evictionSlack(spec: AttentionSpec): number {
  return spec.window === null ? 0 : Math.min(256, Math.floor(spec.window / 4));
}

/** The sinks and the pinned slots (retrieved memory) only: a state without the local window. */
export function memoryOnly(state: KvState, shape: KvShape, spec: AttentionSpec): KvState {
  const keep: number[] = [];
  for (let i = 0; i < state.nSlots; i++) if (state.pinned[i] === 1 || state.positions[i] < spec.sinks) keep.push(i);
  return selectSlots(state, shape, keep);
}

/** Removes the slots whose positions fall in the half-open range [p0, p1). */
export function dropRange(state: KvState, shape: KvShape, p0: number, p1: number): KvState {
  const keep: number[] = [];
  for (let i = 0; i < state.nSlots; i++) {
    const p = state.positions[i];
    if (p < p0 || p >= p1) keep.push(i);
  }
  return selectSlots(state, shape, keep);
}

/**
 * Additive mask (1, 1, nNew, nSlots + nNew) for a chunk at positions nextPos .. nextPos + nNew - 1:
 * 0 where visible, -Infinity where not.
 */
export function attentionBias(state: KvState, spec: AttentionSpec, nNew: number): Float32Array {
  const { nSlots, positions, pinned, nextPos } = state;
  const total = nSlots + nNew;
  const bias = new Float32Array(nNew * total).fill(-Infinity);
  const window = spec.window ?? Infinity;
  // Slots every query sees (sinks, pinned) are marked once; the rest are visible from the first slot whose position is
  // inside the query's window, and their positions increase with the slot index (pinned slots, which insertPinned
  // appends, may sit anywhere: they are visible anyway), so that is a suffix found by a moving index.
  const always: number[] = [];
  for (let s = 0; s < nSlots; s++) if (pinned[s] === 1 || positions[s] < spec.sinks) always.push(s);
  let firstInWindow = 0;
  for (let i = 0; i < nNew; i++) {
    const q = nextPos + i;
    const row = i * total;
    while (firstInWindow < nSlots && q - positions[firstInWindow] >= window) firstInWindow++;
    for (const s of always) bias[row + s] = 0;
    bias.fill(0, row + firstInWindow, row + nSlots);
    // New tokens: causal, and within the window or a sink themselves.
    const j0 = Math.max(0, i - window + 1);
    bias.fill(0, row + nSlots + j0, row + nSlots + i + 1);
    for (let j = 0; j < j0 && nextPos + j < spec.sinks; j++) bias[row + nSlots + j] = 0;
  }
  return bias;
}

/** Bytes held by a state's keys and values. */
export function stateBytes(state: KvState): number {
  let n = 0;
  for (const k of state.keys) n += k.byteLength;
  for (const v of state.values) n += v.byteLength;
  return n;
}

/** Slots to add to a state: per layer (1, nKvHeads, n, headDim) keys/values, their rope positions and prompt origins. */
export interface SlotBatch {
  readonly positions: Int32Array;
  readonly origins: Int32Array;
  readonly keys: readonly Float32Array[];
  readonly values: readonly Float32Array[];
}

/**
 * Appends `batch` to `state` as pinned slots. Pinned slots are visible to every query wherever they sit (attentionBias
 * orders only the others), so they go after the cached slots in one copy per head instead of being interleaved by
 * position: relocated memory shares its positions with the window, which made that merge slot by slot.
 */
export function insertPinned(state: KvState, shape: KvShape, batch: SlotBatch): KvState {
  const m = batch.positions.length;
  if (m === 0) return state;
  const old = state.nSlots;
  const n = old + m;
  const { nKvHeads, headDim: d } = shape;
  const append = (a: Float32Array, b: Float32Array): Float32Array => {
    const out = new Float32Array(nKvHeads * n * d);
    for (let h = 0; h < nKvHeads; h++) {
      out.set(a.subarray(h * old * d, (h + 1) * old * d), h * n * d);
      out.set(b.subarray(h * m * d, (h + 1) * m * d), (h * n + old) * d);
    }
    return out;
  };
  const joined = <T extends Int32Array | Uint8Array>(out: T, a: ArrayLike<number>, b: ArrayLike<number>): T => {
    out.set(a, 0);
    out.set(b, old);
    return out;
  };
  return {
    nSlots: n,
    positions: joined(new Int32Array(n), state.positions, batch.positions),
    origins: joined(new Int32Array(n), state.origins, batch.origins),
    pinned: joined(new Uint8Array(n), state.pinned, new Uint8Array(m).fill(1)),
    keys: state.keys.map((k, l) => append(k, batch.keys[l])),
    values: state.values.map((v, l) => append(v, batch.values[l])),
    nextPos: state.nextPos,
  };
}
