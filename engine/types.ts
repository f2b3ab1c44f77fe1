// Shared engine contracts: the frozen model description, weight access and the tokenizer surface.
// Implementations live next door (config.ts, safetensors.ts, tokenizer/); everything else codes to these.

export type ModelFamily = 'llama' | 'qwen2' | 'mistral';

export type RopeScaling =
  | { readonly type: 'linear'; readonly factor: number }
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositionEmbeddings: number;
    };

/** Frozen description of a decoder checkpoint, parsed from config.json. */
export interface ModelConfig {
  readonly family: ModelFamily;
  readonly hiddenSize: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly intermediateSize: number;
  readonly vocabSize: number;
  readonly rmsNormEps: number;
  readonly ropeTheta: number;
  readonly ropeScaling: RopeScaling | null;
  readonly maxPositionEmbeddings: number;
  /** Sliding window from config.json (`sliding_window`, honoured only when `use_sliding_window` is not false); null = full attention. */
  readonly slidingWindow: number | null;
  readonly tieWordEmbeddings: boolean;
  /** Q/K/V projections carry a bias (Qwen2). */
  readonly attentionBias: boolean;
  readonly bosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
  /** Attention sinks the model was trained with (`attend_sink_tokens`, the built-in model's key); null = not stated. */
  readonly attentionSinks: number | null;
  /**
   * Longest query-to-sink distance the model was trained with (`attend_max_sink_distance`, the built-in model's key);
   * null = max_position_embeddings. Past it the engine moves the sinks' rotary positions along (runtime/decoder.ts).
   */
  readonly sinkDistance: number | null;
  /**
   * The model answers by quoting the documents (`attend_quote_answers`, the built-in model's key): its fixed replies
   * besides quotes, e.g. ["not found"]; null = not stated (answers are free text). See quote.ts.
   */
  readonly quoteReplies: readonly string[] | null;
}

/**
 * Which keys a query may attend to. Query at absolute position q sees key at position k iff
 *   k <= q  and  (window === null || q - k < window || k < sinks).
 * `window` counts the query itself (window 1 = only self). Sinks are the first `sinks` positions of the sequence.
 */
export interface AttentionSpec {
  readonly window: number | null;
  readonly sinks: number;
}

export type DType = 'F32' | 'F16' | 'BF16';

export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  /** Row-major shape as stored, e.g. (out, in) for a Linear weight. */
  readonly shape: readonly number[];
  /** Absolute path of the .safetensors file that holds it. */
  readonly file: string;
}

/** Read-only access to a checkpoint's tensors (one file or a sharded index). */
export interface Checkpoint {
  readonly dir: string;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** Tensor converted to fp32. Throws an error naming tensor and file if absent or if `expectShape` differs. */
  readF32(name: string, expectShape?: readonly number[]): Float32Array;
  /** Releases file handles. */
  close(): void;
}

/** Token ids with the UTF-16 [start, end) range of `text` that each token covers. */
export interface Encoding {
  readonly ids: number[];
  readonly starts: Int32Array;
  readonly ends: Int32Array;
}

export interface StreamDecoder {
  /** Text that became complete with this token (may be '' while a UTF-8 sequence is partial). */
  push(id: number): string;
  /** Whatever is left (incomplete bytes become U+FFFD). */
  flush(): string;
}

export interface Tokenizer {
  readonly vocabSize: number;
  /** Special/added tokens by content, e.g. '<|end|>' -> id. */
  readonly specialTokens: ReadonlyMap<string, number>;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  /**
   * Plain encoding, no BOS/EOS added. With `allowSpecial` (default false) special-token text in `text` becomes the
   * special token (use for trusted template text); without it, it is encoded as ordinary text (use for documents).
   */
  encode(text: string, opts?: { allowSpecial?: boolean }): number[];
  encodeWithOffsets(text: string, opts?: { allowSpecial?: boolean }): Encoding;
  /** Fast count for the meter; equals encode(text).length. */
  count(text: string): number;
  decode(ids: readonly number[]): string;
  createStreamDecoder(): StreamDecoder;
  idToToken(id: number): string | undefined;
  tokenToId(token: string): number | undefined;
}

/** A chat turn for the model's chat template. */
export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant';
  readonly content: string;
}
