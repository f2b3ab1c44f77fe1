// KV state edits: the fast bias mask equals the rule applied pair by pair; eviction and range drops keep the right slots.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  attentionBias,
  dropRange,
  emptyState,
  evictInvisible,
  insertPinned,
  selectSlots,
  visible,
  type KvState,
} from '../../engine/runtime/kv';
import type { AttentionSpec } from '../../engine/types';
import { rng } from './helpers/random-model';

const shape = { nLayers: 2, nKvHeads: 2, headDim: 8 };

function stateWith(positions: number[], pinned: number[], nextPos: number): KvState {
  const n = positions.length;
  const fill = (l: number, kv: number): Float32Array => Float32Array.from({ length: 2 * n * 8 }, (_, i) => l * 1000 + kv * 100 + i);
  return {
    nSlots: n,
    positions: Int32Array.from(positions),
    origins: Int32Array.from(positions),
    pinned: Uint8Array.from(pinned),
    keys: [fill(0, 0), fill(1, 0)],
    values: [fill(0, 1), fill(1, 1)],
    nextPos,
  };
}

test('attentionBias equals the visibility rule for every (query, key) pair', () => {
  const r = rng(9);
  for (let trial = 0; trial < 200; trial++) {
    const spec: AttentionSpec = { window: r() < 0.2 ? null : 1 + Math.floor(r() * 12), sinks: Math.floor(r() * 4) };
    const nextPos = Math.floor(r() * 40);
    const positions: number[] = [];
    const pinned: number[] = [];
    for (let p = 0; p < nextPos; p++) {
      if (r() < 0.6) {
        positions.push(p);
        pinned.push(r() < 0.15 ? 1 : 0);
      }
    }
    const st = stateWith(positions, pinned, nextPos);
    const nNew = 1 + Math.floor(r() * 20);
    const bias = attentionBias(st, spec, nNew);
    const total = st.nSlots + nNew;
    for (let i = 0; i < nNew; i++) {
      for (let k = 0; k < total; k++) {
        const kp = k < st.nSlots ? positions[k] : nextPos + (k - st.nSlots);
        const want = visible(spec, nextPos + i, kp, k < st.nSlots && pinned[k] === 1) ? 0 : -Infinity;
        assert.equal(bias[i * total + k], want, `trial ${trial} spec ${JSON.stringify(spec)} q ${nextPos + i} key ${kp}`);
      }
    }
  }
});

test('evictInvisible keeps sinks, pinned slots and the last window - 1 positions', () => {
  const st = stateWith([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [0, 0, 0, 1, 0, 0, 0, 0, 0, 0], 10);
  const out = evictInvisible(st, shape, { window: 4, sinks: 2 });
  assert.deepEqual(Array.from(out.positions), [0, 1, 3, 7, 8, 9]);
  assert.deepEqual(Array.from(out.pinned), [0, 0, 1, 0, 0, 0]);
  // Layer 1, head 1, slot 3 (position 7) must carry the data of original slot 7.
  const headStride = out.nSlots * 8;
  assert.equal(out.keys[1][headStride + 3 * 8], 1000 + (10 * 8 + 7 * 8));
  assert.equal(evictInvisible(st, shape, { window: null, sinks: 0 }), st);
});

test('dropRange removes [p0, p1) only, and states are never mutated', () => {
  const st = stateWith([0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 0, 0], 6);
  const before = Array.from(st.keys[0]);
  const out = dropRange(st, shape, 2, 4);
  assert.deepEqual(Array.from(out.positions), [0, 1, 4, 5]);
  assert.deepEqual(Array.from(st.keys[0]), before);
  assert.equal(selectSlots(st, shape, [0, 1, 2, 3, 4, 5]), st);
  assert.equal(emptyState(shape, 3).nextPos, 3);
});

test('insertPinned appends the batch as pinned slots; the bias still follows the visibility rule', () => {
  const st = stateWith([0, 1, 7, 8], [0, 0, 0, 0], 9);
  const batch = {
    positions: Int32Array.from([4, 5]),
    origins: Int32Array.from([40, 41]),
    keys: [new Float32Array(2 * 2 * 8).fill(-1), new Float32Array(2 * 2 * 8).fill(-2)],
    values: [new Float32Array(2 * 2 * 8).fill(-3), new Float32Array(2 * 2 * 8).fill(-4)],
  };
  const out = insertPinned(st, shape, batch);
  assert.deepEqual(Array.from(out.positions), [0, 1, 7, 8, 4, 5]);
  assert.deepEqual(Array.from(out.origins), [0, 1, 7, 8, 40, 41]);
  assert.deepEqual(Array.from(out.pinned), [0, 0, 0, 0, 1, 1]);
  // head 1, slot 4 is the first inserted key of layer 1; head 1, slot 2 is the old slot 2 (position 7).
  assert.equal(out.keys[1][(1 * 6 + 4) * 8], -2);
  assert.equal(out.values[0][(1 * 6 + 5) * 8], -3);
  assert.equal(out.keys[1][(1 * 6 + 2) * 8], st.keys[1][(1 * 4 + 2) * 8]);
  assert.equal(out.values[1][(0 * 6 + 3) * 8 + 7], st.values[1][(0 * 4 + 3) * 8 + 7]);
  assert.equal(insertPinned(st, shape, { ...batch, positions: new Int32Array(0), origins: new Int32Array(0) }), st);
  // Query at 9, window 2, 1 sink: the sink, both pinned slots, position 8 and itself are visible; 1 and 7 are not,
  // also with pinned slots sharing positions with cached ones.
  for (const positions of [
    [4, 5],
    [1, 7],
  ]) {
    const tied = insertPinned(st, shape, { ...batch, positions: Int32Array.from(positions) });
    assert.deepEqual(Array.from(attentionBias(tied, { window: 2, sinks: 1 }, 1)), [0, -Infinity, -Infinity, 0, 0, 0, 0]);
  }
});
