// Quoted answers (engine/quote.ts): every step keeps the best token that still continues a span of the documents or a
// fixed reply; the answer ends only where a span ends at a word boundary; a model with garbled preferences still quotes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseQuoted, foldSpace, QuoteConstraint, QUOTE_CANDIDATES, QUOTE_SEARCH, topIndices } from '../../engine/quote';
import { argmax, createSampler } from '../../engine/sampling';
import { Engine } from '../../engine/engine';
import { fixturePath as fixture } from '../../tools/make-fixture';

const DOCS = ['The Wickash brewery lists its head archivist as Gudrun Woldfenost.', 'motto: onward\nthrough fog'];

test('allows spans that start at a word boundary, fixed replies, and nothing across two documents', () => {
  const q = new QuoteConstraint(DOCS, ['not found']);
  for (const ok of ['Gudrun', 'Gudrun Wold', 'Gudrun Woldfenost.', 'onward through', 'not', 'not found', 'G', ''])
    assert.ok(q.allows(ok), ok);
  // "udrun" starts inside a word; "Gudabri" is not in the text; the documents are not one text.
  for (const bad of ['udrun', 'Gudabri', 'fenost. motto', 'Woldfenost.motto', 'not founder']) assert.ok(!q.allows(bad), bad);
  // A split character at the end: allowed only where a non-ASCII character can follow.
  const u = new QuoteConstraint(['Zoë Brand', 'plain'], ['not found']);
  assert.ok(u.allows('Zo\uFFFD') && u.allows('Zoë'));
  assert.ok(!u.allows('Zoë\uFFFD') && !u.allows('Zo\uFFFD\uFFFD\uFFFD\uFFFD') && !q.allows('Gudr\uFFFD'));
  assert.ok(!q.allows('\uFFFD'), 'documents with no character past ASCII take no byte fragments');
  // Case is not part of the match: a value that opens a sentence may be answered in lower case, a reply in any case.
  const c = new QuoteConstraint(['Thistle-thistle is the mascot.'], ['not found']);
  assert.ok(c.allows('thistle-thistle') && c.allows('THISTLE') && c.allows('Not Found'));
  c.commit('thistle-thistle');
  assert.ok(c.mayEnd());
});

test('the answer may end only after a whole span or a fixed reply, and the occurrences narrow as it grows', () => {
  const q = new QuoteConstraint(DOCS, ['not found']);
  assert.equal(q.mayEnd(), false, 'an empty answer does not end');
  q.commit('Gudrun Wold');
  assert.equal(q.mayEnd(), false, '"Wold" is cut mid-word');
  q.commit('Gudrun Woldfenost');
  assert.equal(q.mayEnd(), true);
  const r = new QuoteConstraint(DOCS, ['not found']);
  r.commit('not');
  assert.equal(r.mayEnd(), false, '"not" is neither a reply nor in the documents');
  r.commit('not found');
  assert.equal(r.mayEnd(), true);
  const s = new QuoteConstraint(['ab abc'], []);
  s.commit('ab');
  assert.equal(s.mayEnd(), true, 'one of the occurrences ends at a boundary');
  s.commit('abc');
  assert.ok(!s.allows('ab c'), 'narrowed to the occurrences of "abc"');
});

test('an answer may open with a few blank tokens, not go on with them; with nothing quotable the constraint lets go', () => {
  const q = new QuoteConstraint([''], []);
  for (let i = 0; i < 3; i++) {
    assert.ok(q.allows(''), `blank step ${i}`);
    q.commit('');
  }
  assert.ok(!q.allows(''), 'a fourth blank token is not allowed');
  const l = Float32Array.from([5, 1, 0]); // token 0 is a space, the others are text absent from the document
  assert.equal(
    chooseQuoted(
      l,
      q,
      argmax,
      (i) => ['', 'x', 'y'][i],
      () => false,
      true,
    ),
    0,
  );
  assert.equal(q.active, false, 'released: the unconstrained choice');
});

test('whitespace is folded: a span crossing a line break is quoted with one space', () => {
  assert.equal(foldSpace('a \n\t b'), 'a b');
  assert.equal(QuoteConstraint.visible('  onward\nthrough'), 'onward through');
  assert.ok(new QuoteConstraint(DOCS, []).allows('onward through fog'));
});

test('topIndices returns the k largest, largest first', () => {
  const v = [3, 9, 1, 9.5, 4, 0, 7];
  assert.deepEqual(topIndices(v, 3), [3, 1, 6]);
  assert.deepEqual(topIndices(v, 10), [3, 1, 6, 4, 0, 2, 5]);
});

// A toy vocabulary: the answer is the concatenation of the pieces chosen.
const PIECES = ['<end>', ' G', 'u', 'd', 'ab', 'ri', 'run', ' Wold', 'fen', 'ost', 'x'];
const END = 0;

function decodeGreedily(logitsAt: (step: number) => Float32Array, quote: QuoteConstraint, greedy = true, seed = 1): string {
  const ids: number[] = [];
  const sampler = greedy ? argmax : createSampler({ temperature: 1, topP: 1, seed });
  const text = (xs: number[]) => QuoteConstraint.visible(xs.map((i) => PIECES[i]).join(''));
  for (let step = 0; step < 12; step++) {
    const id = chooseQuoted(
      logitsAt(step),
      quote,
      sampler,
      (i) => text([...ids, i]),
      (i) => i === END,
      greedy,
    );
    if (id === END) break;
    ids.push(id);
    quote.commit(text(ids));
  }
  return text(ids);
}

/** A model that copies "G", "u", "d" and then prefers the garbled "ab", "ri" and an early end. */
function garbled(step: number): Float32Array {
  const l = new Float32Array(PIECES.length).fill(-5);
  const prefer = [[1], [2], [3], [4, 6], [5, 7], [END, 8], [END, 9], [END]][Math.min(step, 7)];
  prefer.forEach((id, rank) => (l[id] = 10 - rank));
  l[END] = Math.max(l[END], 5); // always tempted to stop
  return l;
}

test('a garbled greedy copy becomes the span being copied, and stops only at its end', () => {
  assert.equal(decodeGreedily(garbled, new QuoteConstraint(['head archivist: Gudrun Woldfenost.'], [])), 'Gudrun Woldfenost');
  // Unconstrained, the same preferences make the slip.
  const free = new QuoteConstraint(['Gudrun'], []);
  free.release();
  assert.equal(decodeGreedily(garbled, free), 'Gudabri');
});

test('sampling draws only among the allowed tokens', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const out = decodeGreedily(garbled, new QuoteConstraint(['Gudrun Woldfenost'], []), false, seed);
    assert.ok('Gudrun Woldfenost'.startsWith(out) && out.length > 0, `seed ${seed}: ${out}`);
  }
});

test('beyond the best candidates the search goes down the ranking; with nothing allowed the constraint lets go', () => {
  const n = QUOTE_CANDIDATES + 10;
  const l = Float32Array.from({ length: n }, (_, i) => n - i); // token i ranks i-th
  const texts = Array.from({ length: n }, (_, i) => `t${i}z`);
  const q = new QuoteConstraint([`only t${n - 1}z is here`], []);
  assert.equal(
    chooseQuoted(
      l,
      q,
      argmax,
      (i) => texts[i],
      () => false,
      true,
    ),
    n - 1,
  );
  assert.ok(q.active);
  const none = new QuoteConstraint(['nothing matches'], []);
  assert.equal(
    chooseQuoted(
      l,
      none,
      argmax,
      (i) => texts[i],
      () => false,
      true,
    ),
    0,
    'the unconstrained choice',
  );
  assert.equal(none.active, false);
  // The search stops QUOTE_SEARCH deep: a token ranked below that is not looked at.
  const big = Float32Array.from({ length: QUOTE_SEARCH + 5 }, (_, i) => -i);
  const deep = new QuoteConstraint([`only t${QUOTE_SEARCH + 2}z is here`], []);
  assert.equal(
    chooseQuoted(
      big,
      deep,
      argmax,
      (i) => `t${i}z`,
      () => false,
      true,
    ),
    0,
  );
  assert.equal(deep.active, false);
});

test('through the engine: a random model quotes the document when asked to, and reports it', async () => {
  const engine = await Engine.load({ modelDir: fixture('tiny-llama'), memory: null });
  try {
    const text = 'The keeper of the north light is Amelia Stone.\nShe counted 4021 ships in the spring of 1901.';
    const docs = [{ path: 'light.txt', text }];
    for (const question of ['Who keeps the light?', 'How many ships?', 'When?']) {
      const on = await engine.ask({ docs, question, maxNewTokens: 6, quote: true });
      assert.equal(on.quote, 'on');
      // A quote up to whitespace and case (the answer may stop mid-word only when it runs out of tokens).
      const form = (t: string) => foldSpace(t).toLowerCase();
      assert.ok(on.answer.trim() !== '' && form(text).includes(form(on.answer.trim())), `quoted: ${JSON.stringify(on.answer)}`);
      const off = await engine.ask({ docs, question, maxNewTokens: 6 });
      assert.equal(off.quote, 'off', 'a model whose config does not ask for quotes answers freely');
    }
  } finally {
    await engine.dispose();
  }
});
