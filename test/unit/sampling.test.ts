// Next-token choice: greedy is argmax, a seed reproduces a draw, top-p keeps only the nucleus, temperature shapes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argmax, createSampler, GREEDY } from '../../engine/sampling';

const logits = Float32Array.from([0.1, 2.0, -1.0, 1.9, 0.0]);

test('greedy picks the argmax', () => {
  assert.equal(createSampler(GREEDY)(logits), 1);
  assert.equal(argmax([3, 1, 3]), 0);
});

test('the same seed gives the same sequence of draws; another seed differs somewhere', () => {
  const draw = (seed: number): number[] => {
    const s = createSampler({ temperature: 1, topP: 1, seed });
    return Array.from({ length: 50 }, () => s(logits));
  };
  assert.deepEqual(draw(7), draw(7));
  assert.notDeepEqual(draw(7), draw(8));
});

test('top-p keeps the smallest set reaching the mass: a tiny p is greedy, p covering two tokens never draws a third', () => {
  const tiny = createSampler({ temperature: 1, topP: 1e-6, seed: 1 });
  for (let i = 0; i < 100; i++) assert.equal(tiny(logits), 1);
  // softmax(logits): tokens 1 and 3 carry ~0.80 of the mass together.
  const two = createSampler({ temperature: 1, topP: 0.75, seed: 2 });
  const seen = new Set<number>();
  for (let i = 0; i < 500; i++) seen.add(two(logits));
  assert.deepEqual([...seen].sort(), [1, 3]);
});

test('draw frequencies follow softmax(logits / T)', () => {
  const T = 0.5;
  const s = createSampler({ temperature: T, topP: 1, seed: 3 });
  const n = 20000;
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < n; i++) counts[s(logits)]++;
  const e = Array.from(logits, (x) => Math.exp(x / T));
  const z = e.reduce((a, b) => a + b, 0);
  e.forEach((p, i) => assert.ok(Math.abs(counts[i] / n - p / z) < 0.02, `token ${i}: ${counts[i] / n} vs ${p / z}`));
});

test('bad settings are refused', () => {
  assert.throws(() => createSampler({ temperature: -1, topP: 1, seed: 0 }), /temperature/);
  assert.throws(() => createSampler({ temperature: 1, topP: 0, seed: 0 }), /top_p/);
});
