// One loaded model: the ONNX session built from a checkpoint, and a forward step over a KV state.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { AttentionSpec, Checkpoint, ModelConfig } from '../types';
import { matmulParameters } from '../config';
import { buildDecoderGraph, ropeInverseFrequencies, type WeightFormat } from '../graph/decoder';
import { IO } from '../graph/io';
import { rerotateKeys } from '../memory';
import { attentionBias, evictInvisible, evictionSlack, headSlots, type KvShape, type KvState, emptyState } from './kv';

export interface DecoderOptions {
  readonly attention: AttentionSpec;
  /** Intra-op threads; default: ORT's choice (all cores). */
  readonly threads?: number;
  /** Build the mask from an attention_bias input even when GQA's local window would do (needed for retrieved blocks). */
  readonly forceBiasMask?: boolean;
  /** Matmul weight format (see DecoderGraphOptions.weights); default 'f32'. */
  readonly weights?: WeightFormat;
  /** Extra onnxruntime session options (profiling, optimisation level) for tools; the engine leaves this unset. */
  readonly sessionOptions?: ort.InferenceSession.SessionOptions;
  /**
   * Whether a small model also gets a one-thread session for short steps (SHORT_STEP_TOKENS); default: unless
   * `sessionOptions` are given (a tool profiling the session wants every step in it).
   */
  readonly shortStepSession?: boolean;
}

/**
 * Steps of at most this many tokens (a question, a probe, one decoded token) run on a one-thread session when the model
 * is small (SMALL_MODEL_MATMUL_PARAMS). onnxruntime's intra-op threads spin after each run, waiting for more work, and
 * on a two-core machine they take a core from the JavaScript that runs between short steps (block reads, retrieval,
 * attribution): a warm 32k-token ask of the built-in model took 150-180 ms with one session and 110-130 ms with short
 * steps on their own session, whose cold prefill stayed on the threaded session (3.7 s either way). Turning spinning
 * off in the one session instead made that prefill ~15% slower (3.7 → 4.2-4.5 s). A one-thread session computes the
 * same numbers as the threaded one (bit for bit, decoder tests).
 */
export const SHORT_STEP_TOKENS = 64;
/**
 * Matmul parameters up to which a model gets the short-step session: its weights are held twice (the built-in model's
 * 2.4M cost ~10 MB), and for a model this small a step's matmuls are too short for a second thread to pay.
 */
export const SMALL_MODEL_MATMUL_PARAMS = 8_000_000;

export interface StepResult {
  readonly state: KvState;
  /** When requested: the fed tokens' own keys/values per layer (1, nKvHeads, nNew, headDim), before any eviction. */
  readonly newKv?: { readonly keys: readonly Float32Array[]; readonly values: readonly Float32Array[] };
  /** When requested: per layer (nNew, nHeads * headDim) rotated queries. */
  readonly queries?: readonly Float32Array[];
  /** (keep, vocab) logits for the last `keep` fed tokens. */
  readonly logits: Float32Array;
  /**
   * When requested: per layer (nHeads, nNew, nKeys) attention probabilities, where keys are the past slots followed by
   * the new tokens; `keyPositions` gives the prompt position each key came from.
   */
  readonly attentions?: { readonly layers: readonly Float32Array[]; readonly keyPositions: Int32Array };
}

export interface StepOptions {
  /** Logits for this many trailing tokens (default 1). */
  readonly keepLogits?: number;
  readonly attentions?: boolean;
  readonly captureNew?: boolean;
  readonly queries?: boolean;
}

export class Decoder {
  readonly shape: KvShape;
  private readonly useBias: boolean;
  private readonly invFreq: Float32Array;

  private constructor(
    readonly cfg: ModelConfig,
    readonly spec: AttentionSpec,
    private readonly session: ort.InferenceSession,
    useBias: boolean,
    /** The one-thread session for short steps (SHORT_STEP_TOKENS), or null. */
    private readonly shortSession: ort.InferenceSession | null,
  ) {
    this.shape = { nLayers: cfg.nLayers, nKvHeads: cfg.nKvHeads, headDim: cfg.headDim };
    this.useBias = useBias;
    this.invFreq = ropeInverseFrequencies(cfg);
  }

  /**
   * How far the sinks' rotary positions move for a step whose last query sits at `last`: 0 while every query is within
   * the model's trained sink distance, else the overshoot. A model trained on short sequences has never seen a sink
   * thousands of positions away; at 16k positions the built-in model's in-window pass-key accuracy fell from 90% to
   * 10% (PyTorch, same prompts with their positions offset). Moving the sinks keeps that distance within training, as
   * StreamingLLM's cache positions do. The shift depends only on the step's last position, so a prefill whose chunks
   * end on fixed boundaries computes the same numbers whether it started from position 0 or from restored blocks.
   */
  sinkShift(last: number): number {
    const limit = this.cfg.sinkDistance ?? this.cfg.maxPositionEmbeddings;
    return this.spec.sinks > 0 ? Math.max(0, last - limit) : 0;
  }

  static async create(cfg: ModelConfig, ckpt: Checkpoint, opts: DecoderOptions): Promise<Decoder> {
    if (cfg.headDim % 8 !== 0) {
      throw new Error(
        `model in ${ckpt.dir}: head_dim ${cfg.headDim} is not a multiple of 8, which onnxruntime's GroupQueryAttention requires`,
      );
    }
    const useBias = opts.forceBiasMask === true || opts.attention.sinks > 0;
    // The graph goes through a temporary folder: weights as external data written one at a time, then onnxruntime
    // loads them from the file. Handing it one protobuf buffer instead meant every weight existed up to four times at
    // once (read, transposed, serialised, parsed): peak RSS of a 100M model fell from ~1.8 GB to ~1.1 GB.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-graph-'));
    let session: ort.InferenceSession | undefined;
    let shortSession: ort.InferenceSession | null = null;
    try {
      const modelFile = path.join(dir, 'decoder.onnx');
      const bytes = buildDecoderGraph(
        cfg,
        ckpt,
        {
          mask: useBias ? { kind: 'bias' } : { kind: 'window', window: opts.attention.window },
          attentions: true,
          queries: true,
          ...(opts.weights ? { weights: opts.weights } : {}),
        },
        path.join(dir, 'decoder.weights'),
      );
      fs.writeFileSync(modelFile, bytes);
      session = await ort.InferenceSession.create(modelFile, {
        graphOptimizationLevel: 'all',
        ...(opts.threads ? { intraOpNumThreads: opts.threads } : {}),
        interOpNumThreads: 1,
        ...opts.sessionOptions,
      });
      if (
        (opts.shortStepSession ?? opts.sessionOptions === undefined) &&
        opts.threads !== 1 &&
        matmulParameters(cfg) <= SMALL_MODEL_MATMUL_PARAMS
      ) {
        shortSession = await ort.InferenceSession.create(modelFile, {
          graphOptimizationLevel: 'all',
          intraOpNumThreads: 1,
          interOpNumThreads: 1,
        });
      }
    } catch (e) {
      await session?.release();
      throw e;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    return new Decoder(cfg, opts.attention, session!, useBias, shortSession);
  }

  emptyState(): KvState {
    return emptyState(this.shape);
  }

  /**
   * Runs a short step and a one-token step over `slots` zero slots, results discarded: onnxruntime's first run of a
   * session (and of each larger shape) sets up kernels and grows its memory arena, and an ask's question and first
   * decoded token should not pay for that (Engine.load).
   */
  async warmUp(slots: number, tokens: number): Promise<void> {
    const { nLayers, nKvHeads, headDim } = this.shape;
    const zeros = (): Float32Array[] => Array.from({ length: nLayers }, () => new Float32Array(nKvHeads * slots * headDim));
    const positions = Int32Array.from({ length: slots }, (_, i) => i);
    let state: KvState = {
      nSlots: slots,
      positions,
      origins: positions,
      pinned: new Uint8Array(slots),
      keys: zeros(),
      values: zeros(),
      nextPos: slots,
    };
    state = (await this.step(state, new Array<number>(tokens).fill(0), { attentions: true, queries: true })).state;
    await this.step(state, [0], { attentions: true });
  }

  /** Whether short steps run on their own one-thread session (SHORT_STEP_TOKENS). */
  get shortStepSession(): boolean {
    return this.shortSession !== null;
  }

  /** Feeds `tokens` at positions state.nextPos.. and returns the new (evicted) state plus logits. */
  async step(state: KvState, tokens: readonly number[], opts: StepOptions = {}): Promise<StepResult> {
    const n = tokens.length;
    if (n === 0) throw new Error('decoder step: no tokens');
    const keep = Math.min(opts.keepLogits ?? 1, n);
    const { nLayers, nKvHeads, headDim } = this.shape;
    const feeds: Record<string, ort.Tensor> = {
      [IO.inputIds]: new ort.Tensor(
        'int64',
        BigInt64Array.from(tokens, (t) => BigInt(t)),
        [1, n],
      ),
      [IO.positionIds]: new ort.Tensor(
        'int64',
        BigInt64Array.from({ length: n }, (_, i) => BigInt(state.nextPos + i)),
        [1, n],
      ),
      [IO.numLogitsToKeep]: new ort.Tensor('int64', BigInt64Array.from([BigInt(keep)]), []),
      [IO.outputAttentions]: new ort.Tensor('bool', Uint8Array.from([opts.attentions ? 1 : 0]), []),
    };
    // Sink slots lead the state (positions increase; retrieved blocks never hold sink positions).
    let sinkSlots = 0;
    while (sinkSlots < state.nSlots && state.positions[sinkSlots] < this.spec.sinks && state.pinned[sinkSlots] === 0) sinkSlots++;
    const shift = sinkSlots > 0 ? this.sinkShift(state.nextPos + n - 1) : 0;
    const pastKeys = shift > 0 ? state.keys.map((k) => this.shiftSlots(k, state.nSlots, sinkSlots, shift)) : state.keys;
    for (let l = 0; l < nLayers; l++) {
      feeds[IO.pastKey(l)] = new ort.Tensor('float32', pastKeys[l], [1, nKvHeads, state.nSlots, headDim]);
      feeds[IO.pastValue(l)] = new ort.Tensor('float32', state.values[l], [1, nKvHeads, state.nSlots, headDim]);
    }
    if (this.useBias) {
      feeds[IO.attentionBias] = new ort.Tensor('float32', attentionBias(state, this.spec, n), [1, 1, n, state.nSlots + n]);
    } else if (state.pinned.some((p) => p === 1)) {
      throw new Error('decoder step: pinned slots need a decoder created with forceBiasMask');
    }
    const total = state.nSlots + n;
    // present.* are fetched by name: preallocating them as output tensors measured slower (132-180 vs 115-150 ms per
    // decode step at 4k slots), the binding copying into them anyway on top of zero-filling each new array.
    const fetches: string[] = [IO.logits];
    for (let l = 0; l < nLayers; l++) fetches.push(IO.presentKey(l), IO.presentValue(l));
    if (opts.attentions) for (let l = 0; l < nLayers; l++) fetches.push(IO.attentions(l));
    if (opts.queries) for (let l = 0; l < nLayers; l++) fetches.push(IO.queries(l));

    const out = await (n <= SHORT_STEP_TOKENS && this.shortSession ? this.shortSession : this.session).run(feeds, fetches);

    const positions = new Int32Array(total);
    positions.set(state.positions, 0);
    for (let i = 0; i < n; i++) positions[state.nSlots + i] = state.nextPos + i;
    const keyPositions = new Int32Array(total);
    keyPositions.set(state.origins, 0);
    keyPositions.set(positions.subarray(state.nSlots), state.nSlots);
    const pinned = new Uint8Array(total);
    pinned.set(state.pinned, 0);
    if (shift > 0) {
      // present = past ++ new: put the sinks' own keys back, so states always hold keys at their true positions.
      for (let l = 0; l < nLayers; l++) {
        const present = out[IO.presentKey(l)].data as Float32Array;
        for (let h = 0; h < nKvHeads; h++)
          present.set(state.keys[l].subarray(h * state.nSlots * headDim, (h * state.nSlots + sinkSlots) * headDim), h * total * headDim);
      }
    }
    const grown: KvState = {
      nSlots: total,
      positions,
      origins: keyPositions,
      pinned,
      keys: Array.from({ length: nLayers }, (_, l) => out[IO.presentKey(l)].data as Float32Array),
      values: Array.from({ length: nLayers }, (_, l) => out[IO.presentValue(l)].data as Float32Array),
      nextPos: state.nextPos + n,
    };
    const lastN = (a: Float32Array): Float32Array => headSlots(a, nKvHeads, total, state.nSlots, total, headDim);
    const result: StepResult = {
      state: evictInvisible(grown, this.shape, this.spec, evictionSlack(this.spec)),
      ...(opts.captureNew ? { newKv: { keys: grown.keys.map(lastN), values: grown.values.map(lastN) } } : {}),
      ...(opts.queries ? { queries: Array.from({ length: nLayers }, (_, l) => out[IO.queries(l)].data as Float32Array) } : {}),
      logits: out[IO.logits].data as Float32Array,
      ...(opts.attentions
        ? { attentions: { layers: Array.from({ length: nLayers }, (_, l) => out[IO.attentions(l)].data as Float32Array), keyPositions } }
        : {}),
    };
    return result;
  }

  /** A copy of (nKvHeads, nSlots, headDim) keys with the first `count` slots rotated `delta` positions further. */
  private shiftSlots(keys: Float32Array, nSlots: number, count: number, delta: number): Float32Array {
    const { nKvHeads, headDim: d } = this.shape;
    const lead = new Float32Array(nKvHeads * count * d);
    for (let h = 0; h < nKvHeads; h++) lead.set(keys.subarray(h * nSlots * d, (h * nSlots + count) * d), h * count * d);
    const moved = rerotateKeys(lead, this.shape, new Int32Array(count), new Int32Array(count).fill(delta), this.invFreq);
    const out = keys.slice();
    for (let h = 0; h < nKvHeads; h++) out.set(moved.subarray(h * count * d, (h + 1) * count * d), h * nSlots * d);
    return out;
  }

  async dispose(): Promise<void> {
    await this.session.release();
    await this.shortSession?.release();
  }
}
