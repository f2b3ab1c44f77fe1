// Lexical block scores for block memory: BM25 over token ids, shares, and case/space folding of token ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lexicalScores, shares, termFolder } from '../../engine/lexical';

test("the block holding the question's rare words in order scores highest; a word in every block adds little", () => {
  const common = 7;
  const blocks = [
    [common, 1, 2, 3, 4],
    [common, 50, 51, 5, 6], // the question's words, in order
    [common, 51, 8, 50, 9], // the same words, apart: unigrams only
    [common, 10, 11, 12, 13],
  ];
  const s = lexicalScores([common, 50, 51, 99], blocks);
  assert.ok(s[1] > s[2], `in order ${s[1]} > apart ${s[2]}`);
  assert.ok(s[2] > s[0] && s[2] > s[3]);
  assert.ok(s[0] > 0 && s[0] < 0.2 * s[2], `the common word alone: ${s[0]}`);
  assert.equal(s[0], s[3]);
});

test('no shared token: every score is zero, and shares of zeros stay zeros', () => {
  const s = lexicalScores(
    [100, 101],
    [
      [1, 2],
      [3, 4],
    ],
  );
  assert.deepEqual(Array.from(s), [0, 0]);
  assert.deepEqual(Array.from(shares(s)), [0, 0]);
  assert.deepEqual(Array.from(shares([1, 3])), [0.25, 0.75]);
});

test('a repeated word counts with saturation: twice scores more than once, less than double', () => {
  const s = lexicalScores(
    [50],
    [
      [50, 1, 2],
      [50, 50, 2],
      [3, 4, 5],
    ],
  );
  assert.ok(s[1] > s[0] && s[1] < 2 * s[0]);
});

test('termFolder: the same word in any case, with or without a leading space, is one term', () => {
  const text: Record<number, string> = { 1: ' passkey', 2: 'Passkey', 3: 'passkey', 4: ' PIN', 5: ' ', 6: '\n', 7: 'pin' };
  const decoded: number[] = [];
  // A vocabulary of 7: id 7 lies past it and is folded without the table.
  const term = termFolder((id) => (decoded.push(id), text[id]), 7);
  assert.equal(term(2), term(1));
  assert.equal(term(3), term(1));
  assert.equal(term(7), term(4));
  assert.notEqual(term(1), term(4));
  // Whitespace-only tokens keep their own ids.
  assert.equal(term(5), 5);
  assert.equal(term(6), 6);
  // Each id is decoded once, however often it is folded (ids past the vocabulary each time).
  for (const id of [1, 2, 3, 4, 5, 6]) term(id);
  assert.deepEqual(decoded.filter((id) => id < 7).sort(), [1, 2, 3, 4, 5, 6]);
  // So do byte tokens that are only part of a character (each decodes alone to U+FFFD): they are not one term.
  const bytes = termFolder((id) => (id < 3 ? '\uFFFD' : 'x'), 8);
  assert.deepEqual([bytes(0), bytes(1), bytes(2)], [0, 1, 2]);
});
