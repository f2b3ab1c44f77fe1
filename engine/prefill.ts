// Prefill with a persisted cache: restore the longest stored prefix from KV blocks on disk, compute the rest in
// block-aligned chunks while writing new blocks, and (block memory) bring far blocks back for the question.
import type { AttentionSpec, ModelConfig } from './types';
import type { Decoder, StepResult } from './runtime/decoder';
import { headSlots, insertPinned, memoryOnly, selectSlots, type KvShape, type KvState } from './runtime/kv';
import { lexicalScores, shares } from './lexical';
import {
  blockHashes,
  rootHash,
  summaryTableKey,
  tailHash,
  type KvBlock,
  type KvBlockStore,
  type KvKeys,
  type SummaryTable,
} from './kvstore';
import { relocatedBatch, topBlocks, type BlockScorer, type MemoryBlock } from './memory';

/** A part of the context the question can be read over alone (PrefillResult.secondReading). */
export interface SecondReading {
  readonly over: 'memory' | 'passage';
  /** Runs the question over the part (not counted as prompt work): the state and step to decode the answer from. */
  read(): Promise<{ readonly state: KvState; readonly last: StepResult }>;
}

export interface PrefillProgress {
  readonly done: number;
  readonly total: number;
  readonly reused: number;
}

export interface RetrievedBlock {
  readonly start: number;
  readonly end: number;
  readonly score: number;
}

/** Where reused prompt tokens came from: the in-process state, blocks on disk, or nothing. */
export type ReuseSource = 'none' | 'memory' | 'disk';

export interface PrefillResult {
  /** State after the whole prompt, and the step that fed its last tokens (logits + attention of the last position). */
  readonly state: KvState;
  readonly last: StepResult;
  readonly reused: number;
  readonly reusedFrom: ReuseSource;
  /** Tokens run through the model, including the question's retrieval probe (not the second reading's pass). */
  readonly computed: number;
  readonly retrieved: readonly RetrievedBlock[];
  /** Blocks that were candidates for retrieval (outside the window, stored). */
  readonly memoryCandidates: number;
  /**
   * The question's second reading, when the run asked for it: over the sinks and the retrieved blocks alone when block
   * memory brought something back ('memory'), else over the sinks and the window's passage that best matches the
   * question's words ('passage', when the window holds more than one). `read()` runs the question over that part, once
   * the engine knows the second reading can change the answer (Engine.needsSecondReading).
   */
  readonly secondReading?: SecondReading;
}

export interface PrefillDeps {
  readonly cfg: ModelConfig;
  readonly decoder: Decoder;
  readonly spec: AttentionSpec;
  /** Null: no persisted cache (and no block memory). */
  readonly store: KvBlockStore | null;
  readonly blockSize: number;
  readonly chunkSize: number;
  readonly memoryTopK: number | null;
  /** Scores far blocks for block memory (required when memoryTopK is set). */
  readonly scorer: BlockScorer | null;
  /** Block memory's weight per (layer, head), l * nHeads + h (retrieval-heads.ts); null weighs heads equally. */
  readonly headWeights?: Float64Array | null;
  /**
   * Weight of a block's lexical share (BM25 of the question's tokens, lexical.ts) against its attention share when
   * block memory ranks far blocks; 0 ranks by attention alone. Both shares sum to 1 over the blocks.
   */
  readonly lexicalWeight?: number;
  /** Token id -> term id for lexical matching (case and leading space folded); identity when absent. */
  readonly termOf?: (id: number) => number;
  /** Tokens of a pick's successor block that come back with it (SUCCESSOR_TOKENS when absent). */
  readonly successorTokens?: number;
  /** Tokens of a pick's predecessor block that come back with it (PREDECESSOR_TOKENS when absent). */
  readonly predecessorTokens?: number;
  readonly invFreq: Float32Array;
  readonly warn: (msg: string) => void;
}

export class CancelledError extends Error {
  constructor() {
    super('cancelled');
    this.name = 'CancelledError';
  }
}

/** The state remembered in memory at a context boundary (exact token match). */
export interface RememberedPrefix {
  readonly ids: readonly number[];
  readonly state: KvState;
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class Prefiller {
  private remembered: RememberedPrefix[] = [];
  private static readonly MAX_REMEMBERED = 4;

  constructor(private readonly d: PrefillDeps) {}

  forget(): void {
    this.remembered = [];
  }

  /** Positions a query at `at` can see among [0, at): the slots a restored state must hold. */
  private neededBlocks(at: number): number[] {
    const B = this.d.blockSize;
    const { window, sinks } = this.d.spec;
    const need = new Set<number>();
    const lowest = window === null ? 0 : Math.max(0, at - window + 1);
    for (let b = Math.floor(lowest / B); b * B < at; b++) need.add(b);
    for (let b = 0; b * B < Math.min(sinks, at); b++) need.add(b);
    return [...need].sort((a, b) => a - b);
  }

  /**
   * State rebuilt from stored blocks 0 .. m - 1, then the context's tail entry when `tail` is given (ending the state at
   * ids.length, else at m * blockSize); null if an entry is missing or bad.
   */
  private restore(m: number, hashes: readonly string[], ids: readonly number[], tail: string | null = null): KvState | null {
    const store = this.d.store!;
    const B = this.d.blockSize;
    const R = tail ? ids.length : m * B;
    const { window, sinks } = this.d.spec;
    const blocks: { b: number; data: KvBlock }[] = [];
    for (const b of this.neededBlocks(R)) {
      if (b >= m) break;
      const data = store.read(hashes[b], ids.slice(b * B, (b + 1) * B));
      if (!data) return null;
      blocks.push({ b, data });
    }
    if (tail) {
      const data = store.read(tail, ids.slice(m * B));
      if (!data) return null;
      blocks.push({ b: m, data });
    }
    const shape = this.d.decoder.shape;
    const keepPos = (p: number): boolean => p < sinks || window === null || R - p < window;
    // Per block, the kept tokens as runs of consecutive ones (a window edge cuts a block at most once, sinks once
    // more), so a head's slice of a run is one copy.
    const runs: { block: KvBlock; t: number; len: number; at: number }[] = [];
    const positions: number[] = [];
    for (const { data } of blocks) {
      for (let t = 0; t < data.positions.length; t++) {
        if (!keepPos(data.positions[t])) continue;
        const last = runs[runs.length - 1];
        if (last && last.block === data && last.t + last.len === t) last.len++;
        else runs.push({ block: data, t, len: 1, at: positions.length });
        positions.push(data.positions[t]);
      }
    }
    const n = positions.length;
    const { nKvHeads, headDim: d } = shape;
    const gather = (pick: (blk: KvBlock) => Float32Array): Float32Array => {
      const out = new Float32Array(nKvHeads * n * d);
      for (const r of runs) {
        const src = pick(r.block);
        const len = r.block.positions.length;
        for (let h = 0; h < nKvHeads; h++) out.set(src.subarray((h * len + r.t) * d, (h * len + r.t + r.len) * d), (h * n + r.at) * d);
      }
      return out;
    };
    return {
      nSlots: n,
      positions: Int32Array.from(positions),
      origins: Int32Array.from(positions),
      pinned: new Uint8Array(n),
      keys: Array.from({ length: shape.nLayers }, (_, l) => gather((blk) => blk.keys[l])),
      values: Array.from({ length: shape.nLayers }, (_, l) => gather((blk) => blk.values[l])),
      nextPos: R,
    };
  }

  /** The whole context (its blocks and tail entry), else the longest stored block prefix that can be restored. */
  private fromDisk(ctx: readonly number[], hashes: readonly string[], tail: string | null): { state: KvState; length: number } | null {
    const store = this.d.store;
    if (!store) return null;
    if (tail && store.has(tail)) {
      const m = hashes.length;
      const needed = this.neededBlocks(ctx.length).filter((b) => b < m);
      const state = needed.every((b) => store.has(hashes[b])) ? this.restore(m, hashes, ctx, tail) : null;
      if (state) return { state, length: ctx.length };
    }
    for (let m = hashes.length; m > 0; m--) {
      if (!store.has(hashes[m - 1])) continue;
      if (!this.neededBlocks(m * this.d.blockSize).every((b) => store.has(hashes[b]))) continue;
      const state = this.restore(m, hashes, ctx);
      if (state) return { state, length: m * this.d.blockSize };
    }
    return null;
  }

  /** Stores the step's complete blocks, and the context's tail entry when the step ends the context. */
  private writeBlocks(
    ctx: readonly number[],
    hashes: readonly string[],
    tail: string | null,
    from: number,
    newKv: NonNullable<StepResult['newKv']>,
  ): void {
    const store = this.d.store;
    if (!store || store.readOnlyReason !== null) return;
    const B = this.d.blockSize;
    const shape = this.d.decoder.shape;
    const n = newKv.keys[0].length / (shape.nKvHeads * shape.headDim);
    // Tokens [start, start + len) of the step's new KV (which begins at `from`) as one stored entry.
    const put = (key: string, start: number, len: number): void => {
      if (store.has(key)) return;
      const t0 = start - from;
      const cut = (a: Float32Array): Float32Array => headSlots(a, shape.nKvHeads, n, t0, t0 + len, shape.headDim);
      store.write(key, {
        tokenIds: Int32Array.from(ctx.slice(start, start + len)),
        positions: Int32Array.from({ length: len }, (_, i) => start + i),
        keys: newKv.keys.map(cut),
        values: newKv.values.map(cut),
      });
    };
    for (let b = Math.ceil(from / B); (b + 1) * B <= from + n && b < hashes.length; b++) put(hashes[b], b * B, B);
    const sealed = hashes.length * B;
    if (tail && from <= sealed && from + n === ctx.length) put(tail, sealed, ctx.length - sealed);
  }

  /**
   * Runs the prompt: `ids[0, contextLength)` are the documents (cached), the rest the question (always computed).
   * With `secondReading`, the question can also be read over a part of the context alone (PrefillResult.secondReading).
   */
  async run(
    ids: readonly number[],
    contextLength: number,
    hooks: { signal?: AbortSignal; onProgress?(p: PrefillProgress): void },
    opts: { readonly secondReading?: boolean } = {},
  ): Promise<PrefillResult> {
    const { decoder, blockSize: B } = this.d;
    const check = (): void => {
      if (hooks.signal?.aborted) throw new CancelledError();
    };
    const ctx = ids.slice(0, contextLength);
    const chunk = Math.max(B, Math.floor(this.d.chunkSize / B) * B);
    // A step's numbers depend on where it ends when the sinks move (Decoder.sinkShift), and every step ends on a
    // multiple of the chunk size except the context's last one. Blocks are stored under their prefix keys only where
    // any longer context computes them the same way: before the last chunk boundary, or anywhere when a step ending
    // at the next boundary would not move the sinks either. The rest of the context is one tail entry keyed by the
    // whole context, so a second question restores everything and a longer context recomputes those tokens.
    const boundary = Math.floor(contextLength / chunk) * chunk;
    const sealed = decoder.sinkShift(boundary + chunk - 1) === 0 ? Math.floor(contextLength / B) * B : boundary;
    const hashes = this.d.store ? blockHashes(this.d.store.fingerprint, ctx.slice(0, sealed), B) : [];
    const tail =
      this.d.store && sealed < contextLength
        ? tailHash(hashes.length > 0 ? hashes[hashes.length - 1] : rootHash(this.d.store.fingerprint), ctx.slice(sealed))
        : null;

    // 1. Reuse: an exact context state in memory beats blocks on disk.
    let state: KvState = decoder.emptyState();
    let reused = 0;
    let reusedFrom: ReuseSource = 'none';
    const mem = this.remembered.find((e) => e.ids.length === contextLength && commonPrefix(e.ids, ctx) === contextLength);
    if (mem && contextLength > 0) {
      state = mem.state;
      reused = contextLength;
      reusedFrom = 'memory';
    } else {
      const disk = this.fromDisk(ctx, hashes, tail);
      if (disk) {
        state = disk.state;
        reused = disk.length;
        reusedFrom = 'disk';
      }
    }
    hooks.onProgress?.({ done: reused, total: ids.length, reused });

    // 2. The rest of the documents, in block-aligned chunks, writing each completed block.
    let done = reused;
    let computed = 0;
    let last: StepResult | null = null;
    while (done < contextLength) {
      check();
      // Chunks end on multiples of the chunk size, wherever the reuse stopped: the steps after a restore are then
      // the ones a full prefill runs (the sinks' position shift depends on a step's last position, Decoder.sinkShift).
      const end = Math.min((Math.floor(done / chunk) + 1) * chunk, contextLength);
      last = await decoder.step(state, ctx.slice(done, end), { captureNew: this.d.store !== null });
      if (last.newKv) this.writeBlocks(ctx, hashes, tail, done, last.newKv);
      state = last.state;
      computed += end - done;
      done = end;
      hooks.onProgress?.({ done, total: ids.length, reused });
    }
    if (contextLength > 0 && reusedFrom !== 'memory') {
      this.remembered = [{ ids: ctx, state }, ...this.remembered].slice(0, Prefiller.MAX_REMEMBERED);
    }

    // 3. Block memory: blocks that left the window, scored by the question's queries; the best rejoin as pinned slots.
    const question = ids.slice(contextLength);
    let retrieved: RetrievedBlock[] = [];
    let candidates = 0;
    if (this.d.memoryTopK && this.d.scorer && this.d.store && this.d.spec.window !== null && question.length > 0) {
      const picked = await this.retrieve(state, question, ctx, hashes);
      state = picked.state;
      retrieved = picked.retrieved;
      candidates = picked.candidates;
      computed += picked.probeTokens;
    }

    // 4. The question, with attention for the last position (it attributes the first answer token).
    // `count`: the second reading runs the question again but is not prompt work (PrefillResult.computed).
    const feedQuestion = async (from: KvState, count = true): Promise<{ state: KvState; last: StepResult | null }> => {
      let s = from;
      let l: StepResult | null = last;
      for (let at = 0; at < question.length;) {
        check();
        const end = Math.min(at + chunk, question.length);
        l = await decoder.step(s, question.slice(at, end), { attentions: end === question.length });
        s = l.state;
        if (count) computed += end - at;
        at = end;
      }
      return { state: s, last: l };
    };
    let secondReading: PrefillResult['secondReading'];
    if (opts.secondReading && question.length > 0) {
      const part =
        retrieved.length > 0
          ? { state: memoryOnly(state, decoder.shape, this.d.spec), over: 'memory' as const }
          : this.passageOnly(state, ctx, question);
      if (part) {
        secondReading = {
          over: part.over,
          read: async () => {
            const read = await feedQuestion(part.state, false);
            return { state: read.state, last: read.last! };
          },
        };
      }
    }
    ({ state, last } = await feedQuestion(state));
    hooks.onProgress?.({ done: ids.length, total: ids.length, reused });
    if (!last) throw new Error('empty prompt');
    return {
      state,
      last,
      reused,
      reusedFrom,
      computed,
      retrieved,
      memoryCandidates: candidates,
      ...(secondReading ? { secondReading } : {}),
    };
  }

  /**
   * The sinks and the window's passage of FOCUS_TOKENS that best matches the question's words (BM25, lexical.ts), with
   * FOCUS_MARGIN tokens either side; null when the window holds one passage or less.
   */
  private passageOnly(state: KvState, ctx: readonly number[], question: readonly number[]): { state: KvState; over: 'passage' } | null {
    const { sinks, window } = this.d.spec;
    const n = ctx.length;
    const lo = Math.max(sinks, window === null ? 0 : n - window + question.length);
    const passages: [number, number][] = [];
    for (let a = lo; a < n; a += FOCUS_TOKENS) passages.push([a, Math.min(n, a + FOCUS_TOKENS)]);
    if (passages.length < 2) return null;
    const termOf = this.d.termOf ?? ((id: number) => id);
    const scores = lexicalScores(
      question.map(termOf),
      passages.map(([a, b]) => ctx.slice(a, b).map(termOf)),
    );
    let best = 0;
    for (let i = 1; i < scores.length; i++) if (scores[i] > scores[best]) best = i;
    const [a, b] = passages[best];
    const keep: number[] = [];
    for (let i = 0; i < state.nSlots; i++) {
      const p = state.positions[i];
      if (p < sinks || (p >= a - FOCUS_MARGIN && p < b + FOCUS_MARGIN)) keep.push(i);
    }
    return { state: selectSlots(state, this.d.decoder.shape, keep), over: 'passage' };
  }

  /**
   * The summaries of candidate blocks [first, end) as one key table (memory.ts KeyTable), from the store's summary
   * table of all stored blocks: one read, used as read (`rows` says which of its blocks are candidates). Without one,
   * each block's summary is read from its file, and when every block has one the table is stored for the next
   * question. Blocks whose entry is gone are left out.
   */
  private candidateSummaries(
    ctx: readonly number[],
    hashes: readonly string[],
    first: number,
    end: number,
  ): { blocks: number[]; table: { count: number; keys: readonly Float32Array[] }; tableBlocks: number[]; rows: number[] } | null {
    const store = this.d.store!;
    const B = this.d.blockSize;
    const { nLayers, nKvHeads, headDim: d } = this.d.decoder.shape;
    const m = hashes.length;
    const key = summaryTableKey(hashes[m - 1]);
    let table: SummaryTable | null = store.readSummaryTable(key, ctx.slice(0, m * B));
    if (!table) {
      // Every stored block's summary, the few outside [first, end) included: the table is keyed by the context, and
      // those blocks (this question's window and sinks) are candidates for a question about a longer one.
      const sums = hashes.map((h, b) => store.readSummary(h, ctx.slice(b * B, (b + 1) * B)));
      const count = sums.slice(first, end).find((sum) => sum !== null)?.count;
      if (count === undefined) return null;
      const complete = sums.every((sum) => sum?.count === count);
      const have = complete
        ? Array.from(hashes.keys())
        : sums.flatMap((sum, b) => (b >= first && b < end && sum?.count === count ? [b] : []));
      const keys = Array.from({ length: nLayers }, (_, l) => {
        const out = new Float32Array(nKvHeads * have.length * count * d);
        have.forEach((b, i) => {
          const src = sums[b]!.layers[l].keys;
          for (let g = 0; g < nKvHeads; g++) out.set(src.subarray(g * count * d, (g + 1) * count * d), (g * have.length + i) * count * d);
        });
        return out;
      });
      if (!complete) return { blocks: have, table: { count, keys }, tableBlocks: have, rows: Array.from(have.keys()) };
      table = { blocks: m, blockTokens: B, count, keys };
      store.writeSummaryTable(key, ctx.slice(0, m * B), table);
    }
    // Row b of the table is block b.
    const blocks = Array.from({ length: end - first }, (_, i) => first + i);
    return { blocks, table: { count: table.count, keys: table.keys }, tableBlocks: Array.from({ length: m }, (_, b) => b), rows: blocks };
  }

  private async retrieve(
    state: KvState,
    question: readonly number[],
    ctx: readonly number[],
    hashes: readonly string[],
  ): Promise<{ state: KvState; retrieved: RetrievedBlock[]; candidates: number; probeTokens: number }> {
    const { decoder, spec, blockSize: B } = this.d;
    const store = this.d.store!;
    const before = state.nextPos - spec.window! + 1; // first position of the question's local window
    const placeEnd = state.nextPos; // retrieved blocks are placed right before the question
    const shape = decoder.shape;
    const topK = this.d.memoryTopK!;
    // Candidates: stored blocks that begin before the local window and are not wholly sinks, ranked first by their
    // summaries. The block the window's start cuts is one when it holds tokens before the window besides sinks: they are
    // out of the question's reach otherwise (it comes back only up to the window, PrefillResult.retrieved).
    let first = 0;
    while ((first + 1) * B <= spec.sinks) first++;
    let end = first;
    while (end < hashes.length && Math.max(end * B, spec.sinks) < before) end++;
    const found = end > first ? this.candidateSummaries(ctx, hashes, first, end) : null;
    if (!found) return { state, retrieved: [], candidates: 0, probeTokens: 0 };
    const candidateIdx = found.blocks;

    // Every block is scored as if it sat right before the question, where retrieved blocks will be placed: a block
    // moves as a whole, so one shift per block re-rotates its keys (summary keys included; the scorer rotates them).
    const shift = (b: number): number => placeEnd - B - b * B;
    // The shortlist is ranked by keys alone (half of each file); the blocks that come back are read whole.
    const readKeys = (b: number): KvKeys | null => store.readKeys(hashes[b], ctx.slice(b * B, (b + 1) * B));
    // Where block b's part that can come back ends: the block the window's start cuts is ranked by its tokens before
    // the window, the ones it would bring back (its others are in the window already).
    const reach = (b: number): number => Math.min((b + 1) * B, before);
    const readFull = (b: number): KvBlock | null => store.read(hashes[b], ctx.slice(b * B, (b + 1) * B));
    // Probe: the question's queries at its real positions.
    const probe = await decoder.step(state, question, { queries: true });
    const scorer = this.d.scorer!;
    // With retrieval-head weights, the last prompt token's queries: the position the weights were measured at, and
    // the one whose attention reads the answer. (Eval on a checkpoint midway through training the built-in model,
    // passkey/niah needle recall at 16x / 64x window: every question token, equal heads 67% / 10% and 10% / 0%;
    // weighted heads 78% / 30% and 20% / 0%; weighted heads, last token 78% / 60% and 20% / 20%; n = 10 per cell.)
    // Without weights, every question token votes.
    const weights = this.d.headWeights ?? null;
    const nQ = weights ? 1 : question.length;
    const rowW = this.d.cfg.nHeads * this.d.cfg.headDim;
    const qs = probe.queries!.map((q) => q.subarray((question.length - nQ) * rowW));
    // 0. Lexical shares: the question's tokens against each candidate's (already in memory: the context ids).
    const lexW = this.d.lexicalWeight ?? 0;
    const termOf = this.d.termOf ?? ((id: number) => id);
    let lex: Float64Array = new Float64Array(candidateIdx.length);
    if (lexW > 0) {
      // Candidates are blocks in ascending order: fold the tokens from the first to the last once, then hand out views.
      const lo = candidateIdx[0] * B;
      const folded = foldTokens(ctx, lo, (candidateIdx[candidateIdx.length - 1] + 1) * B, termOf);
      lex = shares(
        lexicalScores(
          question.map(termOf),
          candidateIdx.map((b) => folded.subarray(b * B - lo, reach(b) - lo)),
        ),
      );
    }
    // 1. Shortlist by representative keys, so a warm ask does not read every stored block in full. On the eval's
    //    passkey and needle tasks (16x and 64x window) a shortlist of 16 found the needle block exactly as often as
    //    scoring every block in full; a shortlist of 4 (summaries alone) missed more.
    let shortlist = Array.from(candidateIdx.keys());
    if (candidateIdx.length > shortlistSize(topK)) {
      const rough = await scorer.scoreTable(qs, nQ, { ...found.table, shifts: found.tableBlocks.map(shift) }, weights, found.rows);
      const roughShare = shares(rough);
      shortlist = topBlocks(
        roughShare.map((a, i) => a + lexW * lex[i]),
        shortlistSize(topK),
      );
    }
    // 2. Rank the shortlist by all of its keys.
    const exact = await scorer.score(
      qs,
      nQ,
      shortlist.length,
      (j) => {
        const b = candidateIdx[shortlist[j]];
        const blk = readKeys(b);
        const n = reach(b) - b * B;
        const keys = blk && (n === B ? blk.keys : blk.keys.map((k) => headSlots(k, shape.nKvHeads, B, 0, n, shape.headDim)));
        return keys && { count: n, keys, shift: shift(b) };
      },
      32,
      weights,
    );
    const exactShare = shares(exact);
    const scores = new Float64Array(candidateIdx.length);
    shortlist.forEach((i, j) => (scores[i] = exactShare[j] + lexW * lex[i]));
    const picks = new Set(topBlocks(scores, topK));
    const best = withNeighbours([...picks], candidateIdx, {
      blockSize: B,
      head: this.d.successorTokens ?? SUCCESSOR_TOKENS,
      tail: this.d.predecessorTokens ?? PREDECESSOR_TOKENS,
    })
      // The block the window's start cuts comes back up to the window (the rest is in the window already), and no block
      // brings back sink positions (they are in the cache already).
      .map((r) => ({
        ...r,
        from: Math.max(r.from, spec.sinks - candidateIdx[r.i] * B),
        to: Math.min(r.to, before - candidateIdx[r.i] * B),
      }))
      .filter((r) => r.from < r.to);
    const load = ({ i, from, to }: BlockRange): MemoryBlock | null => {
      const b = candidateIdx[i];
      const blk = readFull(b);
      return blk && sliceBlock({ start: b * B, end: (b + 1) * B, keys: blk.keys, values: blk.values }, from, to, shape);
    };
    const blocks = best.map(load).filter((b): b is MemoryBlock => b !== null);
    const batch = relocatedBatch(blocks, shape, this.d.invFreq, placeEnd, spec.sinks);
    return {
      state: insertPinned(state, shape, batch),
      retrieved: best.map(({ i, from, to }) => ({ start: candidateIdx[i] * B + from, end: candidateIdx[i] * B + to, score: scores[i] })),
      candidates: candidateIdx.length,
      probeTokens: question.length,
    };
  }
}

/**
 * ctx[from, to) folded by `termOf`. A loop over a whole context lives in a function of its own: V8 compiles the
 * function around a loop that turns hot, and compiling all of retrieve() that way took ~60 ms of CPU (on 2 cores, from
 * the ask) the first time a process met a 32k-token context.
 */
function foldTokens(ctx: readonly number[], from: number, to: number, termOf: (id: number) => number): Int32Array {
  const out = new Int32Array(to - from);
  for (let i = 0; i < out.length; i++) out[i] = termOf(ctx[from + i]);
  return out;
}

/** How many candidates block memory ranks by all of their keys, after the summaries' first cut (Prefiller.retrieve). */
export function shortlistSize(topK: number): number {
  return Math.max(16, 4 * topK);
}

/** Tokens per window passage a second reading may focus on (Prefiller.passageOnly), and the margin kept either side. */
export const FOCUS_TOKENS = 128;
export const FOCUS_MARGIN = 32;

/**
 * Tokens of a successor block that come back with a pick: enough to finish a statement cut by the boundary (a pass key
 * line is ~10-25 tokens), without the rest of the block's unrelated text. With the built-in model at 64× the window
 * (`attend eval`, memory on, n = 20 per seed): pass key / needle 55 / 55 of 60 with whole successors on seeds 2-4,
 * 57 / 56 with their first 32 tokens; on fresh seeds 6 and 7, chosen before they were run, 36 / 33 → 36 / 36 of 40.
 * The two pass-key misses it turned right had answered a version string of the filler.
 */
export const SUCCESSOR_TOKENS = 32;

/**
 * Tokens of a predecessor block that come back with a pick: the start of a statement whose end opens the pick (a pass
 * key line cut after its number, the pick holding only "...key that opens the archive."). With the built-in model at
 * 64× the window (`attend eval`, memory on, n = 20 per seed, rule written before the runs): pass key / needle 93 / 92
 * → 94 / 92 of 100 on seeds 2-4, 6, 7; 54 / 56 → 55 / 55 of 60 on fresh seeds 8-10; seed 3 at 1, 4 and 16 W (pass key,
 * needle, multikey, not found) 198 / 240 both ways.
 */
export const PREDECESSOR_TOKENS = 32;

/** Tokens [from, to) of a block, counted from its start (the block itself when that is all of it). */
export function sliceBlock(blk: MemoryBlock, from: number, to: number, shape: KvShape): MemoryBlock {
  const len = blk.end - blk.start;
  to = Math.min(to, len);
  if (from === 0 && to === len) return blk;
  const cut = (a: Float32Array): Float32Array => headSlots(a, shape.nKvHeads, len, from, to, shape.headDim);
  return { start: blk.start + from, end: blk.start + to, keys: blk.keys.map(cut), values: blk.values.map(cut) };
}

/** Tokens [from, to) of candidate `i` (an index into the candidate list) that block memory brings back. */
export interface BlockRange {
  readonly i: number;
  readonly from: number;
  readonly to: number;
}

/**
 * The chosen candidates (indices into `blocks`, block numbers ascending) whole, with the neighbours a block boundary
 * may have cut a statement across: the first `head` tokens of the next block and the last `tail` tokens of the
 * previous one, when those are candidates too. A neighbour between two picks comes back whole. In position order.
 * (`attend eval`, built-in model, passkey at 64× the window, n = 20: 4 of 20 needles crossed a boundary; the top
 * block with its successor answered 13 / 20 against 12 / 20 for the top block alone, and the one example it turned
 * right had its key split across the boundary.)
 */
export function withNeighbours(
  chosen: readonly number[],
  blocks: readonly number[],
  o: { blockSize: number; head: number; tail: number },
): BlockRange[] {
  const B = o.blockSize;
  const picks = new Set(chosen);
  const ranges = new Map<number, [number, number]>();
  const add = (i: number, from: number, to: number): void => {
    const had = ranges.get(i);
    // Two cuts of one block (a head and a tail) leave no gap worth keeping out: the block comes back whole.
    ranges.set(i, had ? [0, B] : [from, to]);
  };
  for (const i of picks) ranges.set(i, [0, B]);
  for (const i of picks) {
    if (o.head > 0 && i + 1 < blocks.length && blocks[i + 1] === blocks[i] + 1 && !picks.has(i + 1)) add(i + 1, 0, Math.min(B, o.head));
    if (o.tail > 0 && i > 0 && blocks[i - 1] === blocks[i] - 1 && !picks.has(i - 1)) add(i - 1, Math.max(0, B - o.tail), B);
  }
  return [...ranges.entries()].sort((a, b) => a[0] - b[0]).map(([i, [from, to]]) => ({ i, from, to }));
}
