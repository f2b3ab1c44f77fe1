// Lexical block scores for block memory: BM25 over token ids, question against each stored block.

/** Terms as numbers: a unigram is its id (>= 0), a bigram -(a * 2^22 + b) - 1 (ids stay below 2^22 = 4M). */
function bigram(a: number, b: number): number {
  return -(a * 4194304 + b) - 1;
}

/**
 * BM25 (k1 = 1.2, blocks of equal length so no length normalisation) of each block against the question's distinct
 * token unigrams and bigrams, with document frequencies counted over the given blocks. Token ids are the tokenizer's,
 * so no vocabulary or language is assumed; a bigram (two question tokens in a row, found in a row in the block) is
 * what makes a multi-token key like `brisk-lantern` or `MAX_POOL_SIZE` specific. Terms found in no block add nothing,
 * and a term found in every block adds little (its IDF is ln(1 + 0.5 / (n + 0.5))).
 */
export function lexicalScores(question: ArrayLike<number>, blocks: readonly ArrayLike<number>[]): Float64Array {
  const terms = new Map<number, number>(); // term -> index
  const add = (t: number): void => {
    if (!terms.has(t)) terms.set(t, terms.size);
  };
  for (let i = 0; i < question.length; i++) {
    add(question[i]);
    if (i + 1 < question.length) add(bigram(question[i], question[i + 1]));
  }
  const n = blocks.length;
  const m = terms.size;
  // Unigram term index by id (-1: not a question token), dense up to the largest question id.
  let top = -1;
  for (let i = 0; i < question.length; i++) top = Math.max(top, question[i]);
  const unigram = new Int32Array(top + 1).fill(-1);
  for (let i = 0; i < question.length; i++) if (question[i] >= 0) unigram[question[i]] = terms.get(question[i])!;
  // Term frequencies, block by block: (n, m). A question has a few dozen terms, so this stays small.
  const tf = new Float64Array(n * m);
  for (let b = 0; b < n; b++) countTerms(blocks[b], unigram, terms, tf, b * m);
  const df = new Float64Array(m);
  for (let i = 0; i < tf.length; i++) if (tf[i] > 0) df[i % m]++;
  const k1 = 1.2;
  const idf = Float64Array.from(df, (d) => Math.log(1 + (n - d + 0.5) / (d + 0.5)));
  const scores = new Float64Array(n);
  for (let b = 0; b < n; b++) {
    let s = 0;
    for (let j = 0; j < m; j++) {
      const f = tf[b * m + j];
      if (f > 0) s += idf[j] * ((f * (k1 + 1)) / (f + k1));
    }
    scores[b] = s;
  }
  return scores;
}

/**
 * Adds one block's question-term counts to tf[row..]: unigrams through the dense `unigram` index, and a question
 * bigram, two question tokens in a row, through `terms` (looked up only after a question token followed by another).
 */
function countTerms(ids: ArrayLike<number>, unigram: Int32Array, terms: ReadonlyMap<number, number>, tf: Float64Array, row: number): void {
  const top = unigram.length;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    const u = id >= 0 && id < top ? unigram[id] : -1;
    if (u < 0) continue;
    tf[row + u]++;
    const next = i + 1 < ids.length ? ids[i + 1] : -1;
    if (next >= 0 && next < top && unigram[next] >= 0) {
      const g = terms.get(bigram(id, next));
      if (g !== undefined) tf[row + g]++;
    }
  }
}

/** Scores scaled to sum to 1 (all zeros stay zeros). */
export function shares(scores: ArrayLike<number>): Float64Array {
  let total = 0;
  for (let i = 0; i < scores.length; i++) total += scores[i];
  const out = new Float64Array(scores.length);
  if (total > 0) for (let i = 0; i < scores.length; i++) out[i] = scores[i] / total;
  return out;
}

/**
 * Token id -> term id for lexical matching: ids whose text is the same word up to case and surrounding whitespace
 * (` passkey`, `Passkey`, `passkey`) share a term, so a question matches a document however a tokenizer spelled it.
 * Memoised per id below `vocabSize` (others are decoded each time); `decode` is the tokenizer's single-id decode.
 */
export function termFolder(decode: (id: number) => string, vocabSize: number): (id: number) => number {
  const byText = new Map<string, number>();
  // Dense, filled as ids are met (-1: not yet): a 32k-token context folds ~32k ids on every question.
  const byId = new Int32Array(vocabSize).fill(-1);
  return (id) => {
    if (id >= 0 && id < vocabSize && byId[id] >= 0) return byId[id];
    const text = decode(id).trim().toLowerCase();
    // Whitespace, and pieces of a character (a byte token decodes alone to U+FFFD), keep their own ids.
    const own = text === '' || text.includes('\uFFFD');
    const t = own ? id : (byText.get(text) ?? id);
    if (!own && !byText.has(text)) byText.set(text, id);
    if (id >= 0 && id < vocabSize) byId[id] = t;
    return t;
  };
}
