import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { applyChanges, shiftRange, spansToPositions } from '../../extension/ranges';

test('token offsets map to (line, character) with \\n, \\r\\n and \\r line breaks', () => {
  const text = 'ab\ncd\r\nef\rgh';
  const r = spansToPositions(text, [
    { start: 0, end: 2 },
    { start: 3, end: 5 },
    { start: 7, end: 9 },
    { start: 10, end: 12 },
    { start: 1, end: 8 },
    { start: 5, end: 6 }, // between \r and \n -> end of line 1
    { start: 50, end: 60 }, // clamped
  ]);
  const flat = r.map((p) => [p.start.line, p.start.character, p.end.line, p.end.character]);
  assert.deepEqual(flat, [
    [0, 0, 0, 2],
    [1, 0, 1, 2],
    [2, 0, 2, 2],
    [3, 0, 3, 2],
    [0, 1, 2, 1],
    [1, 2, 1, 2],
    [3, 2, 3, 2],
  ]);
});

test('surrogate pairs count as two UTF-16 characters, as in VS Code', () => {
  const [p] = spansToPositions('😀x\n', [{ start: 2, end: 3 }]);
  assert.deepEqual([p.start.character, p.end.character], [2, 3]);
});

test('edits before a range shift it, edits after leave it, overlapping edits drop it', () => {
  const r = { start: 10, end: 20 };
  assert.deepEqual(shiftRange(r, { offset: 0, length: 0, text: 'abc' }), { start: 13, end: 23 });
  assert.deepEqual(shiftRange(r, { offset: 2, length: 5, text: '' }), { start: 5, end: 15 });
  assert.deepEqual(shiftRange(r, { offset: 10, length: 0, text: 'x' }), { start: 11, end: 21 }, 'insert at start shifts');
  assert.deepEqual(shiftRange(r, { offset: 5, length: 5, text: 'xy' }), { start: 7, end: 17 }, 'replace ending at start shifts');
  assert.deepEqual(shiftRange(r, { offset: 20, length: 0, text: 'x' }), r, 'insert at end keeps');
  assert.deepEqual(shiftRange(r, { offset: 25, length: 3, text: '' }), r);
  assert.equal(shiftRange(r, { offset: 15, length: 1, text: 'q' }), null);
  assert.equal(shiftRange(r, { offset: 5, length: 6, text: '' }), null);
  assert.equal(shiftRange(r, { offset: 19, length: 5, text: '' }), null);
  assert.equal(shiftRange(r, { offset: 12, length: 0, text: 'x' }), null, 'insert inside drops');
});

test('several changes of one event apply as if from the last to the first', () => {
  const r = { start: 10, end: 20 };
  // Two cursors: insert "AB" at 2 and "C" at 30 (offsets refer to the text before the event), in any order.
  assert.deepEqual(
    applyChanges(r, [
      { offset: 2, length: 0, text: 'AB' },
      { offset: 30, length: 0, text: 'C' },
    ]),
    { start: 12, end: 22 },
  );
  assert.deepEqual(
    applyChanges(r, [
      { offset: 30, length: 0, text: 'C' },
      { offset: 2, length: 0, text: 'AB' },
    ]),
    { start: 12, end: 22 },
  );
  assert.equal(
    applyChanges(r, [
      { offset: 2, length: 0, text: 'AB' },
      { offset: 15, length: 0, text: 'C' },
    ]),
    null,
  );
});
