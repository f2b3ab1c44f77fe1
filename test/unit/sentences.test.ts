import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { passagesForTokens, sentenceViews, splitSentences, supportedSpan } from '../../extension/sentences';
import type { WireAnswerToken, WirePassage } from '../../engine/protocol';

const tok = (text: string, sources: WireAnswerToken['sources'] = []): WireAnswerToken => ({ text, sources });

test('tokens group into sentences at terminal punctuation and line breaks', () => {
  const tokens = [tok('The'), tok(' keeper'), tok(' counted'), tok('.'), tok(' She'), tok(' wrote'), tok('!"'), tok(' Then\n'), tok('end')];
  const answer = tokens.map((t) => t.text).join('');
  const s = splitSentences(tokens);
  assert.deepEqual(
    s.map((x) => answer.slice(x.start, x.end)),
    ['The keeper counted.', 'She wrote!"', 'Then', 'end'],
  );
  assert.deepEqual(
    s.map((x) => [x.firstToken, x.endToken]),
    [
      [0, 4],
      [4, 7],
      [7, 8],
      [8, 9],
    ],
  );
  assert.deepEqual(splitSentences([tok(' '), tok('\n')]), []);
  assert.deepEqual(splitSentences([]), []);
  assert.equal(splitSentences([tok('3.5'), tok(' is')]).length, 1, 'a point inside a token does not split');
});

const passages: WirePassage[] = [
  { doc: 0, path: 'a.md', start: 0, end: 20, startLine: 0, endLine: 0, score: 0.6, supports: [1, 0] },
  { doc: 0, path: 'a.md', start: 21, end: 40, startLine: 1, endLine: 1, score: 0.3, supports: [4] },
  { doc: 1, path: 'b.md', start: 0, end: 10, startLine: 0, endLine: 0, score: 0.1, supports: [4] },
];

test('a sentence draws on the passages its tokens attended to, as shares', () => {
  const tokens = [
    tok('A', [
      { doc: 0, start: 2, end: 4, weight: 0.5 },
      { doc: 0, start: 25, end: 27, weight: 0.5 },
    ]),
    tok('.', [{ doc: 0, start: 5, end: 6, weight: 1 }]),
    tok(' B', [
      { doc: 1, start: 0, end: 3, weight: 0.75 },
      { doc: 0, start: 90, end: 95, weight: 0.25 },
    ]),
    tok('.'),
  ];
  const views = sentenceViews(tokens, passages);
  assert.equal(views.length, 2);
  assert.deepEqual(views[0].passages, [
    { index: 0, weight: 0.75 },
    { index: 1, weight: 0.25 },
  ]);
  assert.deepEqual(views[1].passages, [{ index: 2, weight: 1 }], 'spans outside every passage do not count');
  assert.deepEqual(passagesForTokens(tokens, passages, 3, 4), []);
});

test('the answer span a passage supported is the sentence of its strongest supporting token', () => {
  const tokens = [tok('One'), tok(' two.'), tok(' Three'), tok(' four'), tok(' five.')];
  const answer = tokens.map((t) => t.text).join('');
  const s = splitSentences(tokens);
  assert.equal(supportedSpan(answer, s, passages[0]), 'One two.');
  assert.equal(supportedSpan(answer, s, passages[1]), 'Three four five.');
  assert.equal(supportedSpan(answer, s, { ...passages[0], supports: [] }), null);
});
