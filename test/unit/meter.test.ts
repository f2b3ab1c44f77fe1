import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  breakdownLines,
  cacheFriendlyOrder,
  cachedPrefixDocs,
  computeMeter,
  formatTokens,
  progressLabel,
  statusText,
  type MeterInput,
} from '../../extension/meter';

const base: MeterInput = {
  files: [
    { path: 'a.md', tokens: 100, overhead: 10, key: 'a@1' },
    { path: 'big.md', tokens: 5000, overhead: 10, key: 'big@1' },
    { path: 'c.md', tokens: 200, overhead: 10, key: 'c@1' },
  ],
  skipped: [{ path: 'logo.png', reason: 'binary (NUL bytes in the first 8 KB)' }],
  framePrefixTokens: 5,
  frameSuffixTokens: 3,
  questionTokens: 12,
  answerReserve: 256,
  budget: 1000,
  window: 512,
  sinks: 4,
};

test('files are packed in order; one that does not fit is left out with what it needed, later ones may still fit', () => {
  const m = computeMeter(base);
  assert.deepEqual(m.includedPaths, ['a.md', 'c.md']);
  assert.equal(m.used, 5 + 3 + 12 + 256 + 110 + 210);
  assert.equal(m.frameTokens, 8);
  assert.deepEqual(
    m.files.map((f) => [f.path, f.tokens, f.included]),
    [
      ['a.md', 110, true],
      ['big.md', 5010, false],
      ['c.md', 210, true],
    ],
  );
  assert.equal(m.leftOut.length, 2);
  assert.equal(m.leftOut[0].path, 'big.md');
  assert.match(m.leftOut[0].reason, /needs 5,010, 614 left/);
  assert.equal(m.leftOut[0].tokens, 5010);
  assert.deepEqual(m.leftOut[1], { path: 'logo.png', reason: 'binary (NUL bytes in the first 8 KB)', tokens: null });
  assert.equal(m.cachedTokens, 0);
  assert.equal(m.toComputeTokens, m.used - 256);
});

test('a file that exactly fills the budget is included; the fixed parts alone may exceed it', () => {
  const exact = computeMeter({ ...base, files: [{ path: 'x', tokens: 1000 - 276 - 10, overhead: 10, key: 'x' }], skipped: [] });
  assert.deepEqual(exact.includedPaths, ['x']);
  assert.equal(exact.used, 1000);
  const tiny = computeMeter({ ...base, budget: 100, skipped: [] });
  assert.deepEqual(tiny.includedPaths, []);
  assert.equal(tiny.used, 276);
  assert.ok(tiny.leftOut.every((l) => /0 left/.test(l.reason)));
});

test('cached tokens: a remembered context that is a prefix of the included documents', () => {
  assert.equal(cachedPrefixDocs(['a', 'b', 'c'], [['a', 'b'], ['a'], ['x']]), 2);
  assert.equal(cachedPrefixDocs(['a', 'b'], [['a', 'b', 'c']]), 0);
  assert.equal(cachedPrefixDocs(['a'], [[]]), 0);
  const m = computeMeter({ ...base, cachedContexts: [['a@1']] });
  assert.equal(m.cachedTokens, 5 + 110);
  assert.equal(m.files[0].cached, 110);
  assert.equal(m.files[2].cached, 0);
  assert.equal(m.toComputeTokens, m.used - 256 - 115);
  const changed = computeMeter({ ...base, cachedContexts: [['a@0']] });
  assert.equal(changed.cachedTokens, 0);
});

test('formatting: tokens, status text, progress label, breakdown', () => {
  assert.equal(formatTokens(950), '950');
  assert.equal(formatTokens(12_400), '12.4k');
  assert.equal(formatTokens(32_000), '32k');
  assert.equal(formatTokens(1_000), '1k');
  assert.equal(formatTokens(1_500_000), '1.5M');
  const m = computeMeter({ ...base, budget: 32_000, window: 1000, files: [{ path: 'a', tokens: 12_000, overhead: 124, key: 'a' }] });
  assert.equal(statusText({ ...m, used: 12_400 }), 'Attend 12.4k / 32k · window 1k');
  assert.equal(statusText({ ...m, window: null }), `Attend ${formatTokens(m.used)} / 32k`);
  assert.equal(
    progressLabel({ phase: 'prefill', done: 12_400, total: 48_000, reused: 30_000 }),
    'prefill 12,400 / 48,000 tokens (30,000 reused from cache)',
  );
  assert.equal(progressLabel({ phase: 'prefill', done: 5, total: 10, reused: 0 }), 'prefill 5 / 10 tokens');
  const lines = breakdownLines(computeMeter(base));
  assert.ok(lines.some((l) => l.includes('big.md') && l.includes('over the token budget')));
  assert.ok(lines.some((l) => l.includes('logo.png')));
  assert.ok(lines.some((l) => l.startsWith('attention window 512 tokens + 4 sink tokens')));
});

test('prompt order: documents that fit, least recently modified first (ties keep path order), then the rest', () => {
  const docs = [{ modified: 300 }, { modified: 100 }, { modified: 500 }, { modified: 100 }, {}, { modified: 50 }];
  // Index 2 does not fit; index 4 has no time (selection scopes) and counts as oldest.
  assert.deepEqual(
    cacheFriendlyOrder(docs, (i) => i !== 2),
    [4, 5, 1, 3, 0, 2],
  );
  // All equal (a fresh checkout): path order stays.
  assert.deepEqual(
    cacheFriendlyOrder([{ modified: 7 }, { modified: 7 }, { modified: 7 }], () => true),
    [0, 1, 2],
  );
});

test('re-packing in prompt order keeps the same documents in and out (packing skips, never stops)', () => {
  const budget = 1000;
  const files = [600, 700, 300, 200].map((tokens, i) => ({ path: `f${i}`, tokens, overhead: 10, key: `k${i}` }));
  const base = {
    skipped: [],
    framePrefixTokens: 5,
    frameSuffixTokens: 5,
    questionTokens: 10,
    answerReserve: 20,
    budget,
    window: 512,
    sinks: 4,
    cachedContexts: [],
  };
  const first = computeMeter({ ...base, files });
  const fits = new Set(first.includedPaths);
  const order = cacheFriendlyOrder(
    files.map((_, i) => ({ modified: [40, 30, 20, 10][i] })),
    (i) => fits.has(files[i].path),
  );
  const second = computeMeter({ ...base, files: order.map((i) => files[i]) });
  assert.deepEqual([...second.includedPaths].sort(), [...first.includedPaths].sort());
  assert.deepEqual(
    second.includedPaths,
    order.filter((i) => fits.has(files[i].path)).map((i) => files[i].path),
  );
});
