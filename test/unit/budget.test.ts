import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { countDocuments, formatShare, lineIndex, offsetToPosition, positionToOffset, shareOf, tokenPositions } from '../../engine/budget';
import { loadTokenizer } from '../../engine/tokenizer';
import { fixturePath, makeRng } from '../../tools/make-fixture';

test('countDocuments: per-file counts in input order and their total', () => {
  const words = { count: (t: string) => t.split(/\s+/).filter(Boolean).length };
  const r = countDocuments(words, [
    { path: 'a', text: 'one two three' },
    { path: 'b', text: '' },
    { path: 'c', text: ' four  five ' },
  ]);
  assert.deepEqual(r, {
    perFile: [
      { path: 'a', tokens: 3 },
      { path: 'b', tokens: 0 },
      { path: 'c', tokens: 2 },
    ],
    total: 5,
  });
});

test('countDocuments with the fixture tokenizer equals encode().length per document', () => {
  const tok = loadTokenizer(fixturePath('tiny-llama'));
  const docs = [
    { path: 'x.md', text: 'The keeper read the notebook again.\n' },
    { path: 'y.md', text: 'Special text <|end|> in a document is ordinary text. 🙂' },
  ];
  const r = countDocuments(tok, docs);
  assert.deepEqual(
    r.perFile.map((f) => f.tokens),
    docs.map((d) => tok.encode(d.text).length),
  );
  assert.equal(r.total, r.perFile[0].tokens + r.perFile[1].tokens);
  assert.ok(r.perFile[1].tokens > 5);
});

test('shares and their formatting', () => {
  assert.equal(shareOf(512, 2048), 0.25);
  assert.equal(shareOf(10, null), null);
  assert.equal(formatShare(0.25), '25.0%');
  assert.equal(formatShare(3.5), '350.0%');
  assert.equal(formatShare(0.0004), '<0.1%');
  assert.equal(formatShare(0), '0.0%');
  assert.equal(formatShare(null), '—');
});

test('offsetToPosition: \\n, \\r\\n and \\r line breaks, UTF-16 columns, clamping', () => {
  const text = 'ab\ncd\r\nef\rg🙂h';
  const idx = lineIndex(text);
  assert.deepEqual([...idx.lineStarts], [0, 3, 7, 10]);
  const pos = (o: number) => {
    const p = offsetToPosition(idx, o);
    return [p.line, p.character];
  };
  assert.deepEqual(pos(0), [0, 0]);
  assert.deepEqual(pos(2), [0, 2]); // the \n itself ends line 0
  assert.deepEqual(pos(3), [1, 0]);
  assert.deepEqual(pos(5), [1, 2]); // at \r
  assert.deepEqual(pos(6), [1, 2]); // between \r and \n: end of line, as VS Code
  assert.deepEqual(pos(7), [2, 0]);
  assert.deepEqual(pos(10), [3, 0]);
  assert.deepEqual(pos(13), [3, 3]); // after the surrogate pair
  assert.deepEqual(pos(text.length), [3, 4]);
  assert.deepEqual(pos(999), [3, 4]);
  assert.deepEqual(pos(-5), [0, 0]);
  assert.deepEqual([...lineIndex('').lineStarts], [0]);
  assert.deepEqual([...lineIndex('\n\n').lineStarts], [0, 1, 2]);
});

/** Straightforward reference: split into lines and walk. */
function naivePosition(text: string, offset: number): [number, number] {
  let line = 0;
  let start = 0;
  for (let i = 0; i < offset; i++) {
    const c = text[i];
    if (c === '\n' || (c === '\r' && text[i + 1] !== '\n')) {
      line++;
      start = i + 1;
    }
  }
  const inCrlf = offset > start && text[offset - 1] === '\r' && text[offset] === '\n';
  return [line, offset - start - (inCrlf ? 1 : 0)];
}

test('offsetToPosition, positionToOffset and tokenPositions agree with a naive walk on random text', () => {
  const rng = makeRng(42);
  const alphabet = ['a', 'b', ' ', '\n', '\r', '\r\n', 'é', '🙂'];
  for (let round = 0; round < 30; round++) {
    let text = '';
    const n = Math.floor(rng() * 200);
    for (let i = 0; i < n; i++) text += alphabet[Math.floor(rng() * alphabet.length)];
    const idx = lineIndex(text);
    for (let o = 0; o <= text.length; o++) {
      const p = offsetToPosition(idx, o);
      assert.deepEqual([p.line, p.character], naivePosition(text, o), `text ${JSON.stringify(text)} offset ${o}`);
      const inCrlf = o > 0 && text[o - 1] === '\r' && text[o] === '\n';
      if (!inCrlf) assert.equal(positionToOffset(idx, p), o);
    }
    // Ascending spans (as a tokenizer produces) and shuffled ones.
    const starts: number[] = [];
    const ends: number[] = [];
    for (let o = 0; o < text.length;) {
      const len = 1 + Math.floor(rng() * 4);
      starts.push(o);
      ends.push(Math.min(text.length, o + len));
      o += len;
    }
    for (const order of ['sorted', 'shuffled']) {
      const perm = starts.map((_, i) => i);
      if (order === 'shuffled') perm.sort(() => rng() - 0.5);
      const enc = { starts: Int32Array.from(perm.map((i) => starts[i])), ends: Int32Array.from(perm.map((i) => ends[i])) };
      const tp = tokenPositions(idx, enc);
      for (let k = 0; k < perm.length; k++) {
        assert.deepEqual([tp.startLine[k], tp.startCharacter[k]], naivePosition(text, enc.starts[k]));
        assert.deepEqual([tp.endLine[k], tp.endCharacter[k]], naivePosition(text, enc.ends[k]));
      }
    }
  }
});

test('positionToOffset clamps characters past the end of a line and lines past the end', () => {
  const idx = lineIndex('ab\r\ncd');
  assert.equal(positionToOffset(idx, { line: 0, character: 99 }), 2);
  assert.equal(positionToOffset(idx, { line: 1, character: 99 }), 6);
  assert.equal(positionToOffset(idx, { line: 5, character: 0 }), 6);
  assert.equal(positionToOffset(idx, { line: -1, character: 3 }), 0);
});
