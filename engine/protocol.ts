// Every message between the extension and the engine worker (JSON-RPC over stdio) and between the extension and the
// answer webview (postMessage), with the direction in each type's name, plus a guard for every incoming message.
// Imported by the worker (node), the extension (node + vscode) and the webview (DOM): it must import nothing at run
// time, so method names are plain strings and the guards are hand-written.

// ---------------------------------------------------------------------------------------------------------------
// Shared wire shapes (JSON-safe: no typed arrays, no Maps)

export interface WireDoc {
  /** Display path (workspace-relative in the extension); must be unique within one request. */
  readonly path: string;
  readonly text: string;
}

/** Where one answer token's attention fell in the sources: a UTF-16 [start, end) span of document `doc`. */
export interface WireSourceSpan {
  readonly doc: number;
  readonly start: number;
  readonly end: number;
  /** Share of the token's source attention. */
  readonly weight: number;
}

export interface WireAnswerToken {
  readonly text: string;
  /** Strongest source spans first; empty when the token attended to no document. */
  readonly sources: readonly WireSourceSpan[];
}

/** A ranked source passage (engine/attribution builds them). */
export interface WirePassage {
  readonly doc: number;
  readonly path: string;
  /** UTF-16 [start, end) in the document text, whole lines. */
  readonly start: number;
  readonly end: number;
  /** 0-based line range [startLine, endLine]. */
  readonly startLine: number;
  readonly endLine: number;
  /** Share of the answer's source attention, in [0, 1]. */
  readonly score: number;
  /** Answer token indices whose attention fell most on this passage (strongest first). */
  readonly supports: readonly number[];
}

export type WirePhase = 'load' | 'prefill' | 'decode';
export type WireStopReason = 'eos' | 'stop' | 'length' | 'cancelled';

/**
 * How the answer was decoded (engine/quote.ts): 'on' = every token continued a quote of the documents or one of the
 * model's fixed replies, 'released' = the constraint had to let go and the rest is free text, 'off' = free text.
 */
export type WireQuoteMode = 'on' | 'released' | 'off';

/**
 * Which of block memory's two readings gave the answer (engine.ts SECOND_READING): 'window' = the question read with
 * the local window and the retrieved blocks, 'memory' = over the retrieved blocks alone, 'passage' = over the window's
 * best-matching passage alone (nothing was retrieved). Absent: one reading.
 */
export type WireReading = 'window' | 'memory' | 'passage';

// ---------------------------------------------------------------------------------------------------------------
// Extension -> engine worker: requests (params -> result)

export const EngineMethod = {
  load: 'load',
  countTokens: 'countTokens',
  ask: 'ask',
  clearCache: 'clearCache',
  shutdown: 'shutdown',
} as const;

/** Engine worker -> extension notifications. */
export const EngineNotification = {
  progress: 'progress',
  token: 'token',
  log: 'log',
} as const;

export interface LoadParams {
  readonly modelDir: string;
  /** Sliding window in tokens; null = model default. */
  readonly window: number | null;
  /** Attention sinks; null = model default. */
  readonly sinks: number | null;
  /** Load the weights now (an ONNX session); false = config and tokenizer only (enough for counting). */
  readonly weights: boolean;
  readonly threads?: number;
  /** Folder of the persisted KV cache; null = a private temporary store that lives as long as the engine. */
  readonly cacheDir?: string | null;
  /** Disk budget of the KV cache in bytes; null = the engine's default. */
  readonly cacheMaxBytes?: number | null;
  /** Tokens per KV-cache block (and block-memory block); absent = the engine's default. */
  readonly blockSize?: number;
  /** Far blocks block memory brings back per question; 0 = block memory off; absent = the engine's default. */
  readonly memoryTopK?: number;
  /** Block memory's lexical weight (Engine DEFAULT_LEXICAL_WEIGHT when absent). */
  readonly memoryLexicalWeight?: number;
  /** Block memory's second reading (Engine SECOND_READING when absent). */
  readonly memorySecondReading?: boolean;
}

export interface ModelInfo {
  readonly modelDir: string;
  readonly family: string;
  /** config.json max_position_embeddings. */
  readonly maxPositionEmbeddings: number;
  /** Effective attention window (null = full attention) and sinks. */
  readonly window: number | null;
  readonly sinks: number;
  readonly vocabSize: number;
  readonly weightsLoaded: boolean;
}

export interface CountTokensParams {
  readonly docs: readonly WireDoc[];
  readonly question: string;
}

export interface FileTokens {
  readonly path: string;
  /** Tokens of the document's text. */
  readonly tokens: number;
  /** Tokens of the header and footer that frame it in the prompt. */
  readonly overhead: number;
}

export interface CountTokensResult {
  readonly perFile: readonly FileTokens[];
  /** Chat-template tokens before the documents (part of the cacheable prefix) and after the question. */
  readonly framePrefixTokens: number;
  readonly frameSuffixTokens: number;
  /** "Question: ..." tokens. */
  readonly questionTokens: number;
  readonly model: ModelInfo;
}

export interface AskParams {
  /** Client-chosen id; every progress/token notification of this ask carries it. */
  readonly askId: string;
  readonly docs: readonly WireDoc[];
  readonly question: string;
  readonly maxNewTokens: number;
  readonly temperature?: number;
  readonly seed?: number;
  readonly stop?: readonly string[];
  /** Answers quote the documents (engine/quote.ts); absent = the model's default. */
  readonly quote?: boolean;
}

export interface ProgressNotification {
  readonly askId: string;
  readonly phase: WirePhase;
  readonly done: number;
  readonly total: number;
  /** Prompt tokens restored from the cache instead of computed. */
  readonly reused: number;
}

export interface TokenNotification {
  readonly askId: string;
  readonly index: number;
  readonly text: string;
  readonly sources: readonly WireSourceSpan[];
}

export interface LogNotification {
  readonly level: 'info' | 'warn' | 'error';
  readonly message: string;
}

export interface AskResultWire {
  readonly askId: string;
  readonly answer: string;
  readonly stopReason: WireStopReason;
  readonly promptTokens: number;
  readonly reusedTokens: number;
  readonly computedTokens: number;
  readonly generatedTokens: number;
  readonly timings: { readonly prefillMs: number; readonly firstTokenMs: number; readonly decodeMs: number };
  readonly passages: readonly WirePassage[];
  readonly tokens: readonly WireAnswerToken[];
  readonly quote: WireQuoteMode;
  readonly reading?: WireReading;
}

export interface ClearCacheResult {
  /** The engine dropped its in-process context states and emptied its on-disk KV cache folder. */
  readonly cleared: boolean;
  /** The cache folder emptied, when it is a persistent one. */
  readonly cacheDir: string | null;
}

/** `data` of a JSON-RPC error from the worker. */
export interface EngineErrorData {
  /** The file the problem is in, when known. */
  readonly file?: string;
  readonly problem: string;
  readonly kind: 'bad-model' | 'bad-request' | 'not-loaded' | 'cancelled' | 'internal';
}

/** JSON-RPC error codes the worker uses (application range). */
export const EngineErrorCode = {
  badModel: -32001,
  notLoaded: -32002,
  cancelled: -32800, // LSP's RequestCancelled, which vscode-jsonrpc understands
  internal: -32603,
  badRequest: -32602,
} as const;

/** Request method -> [params, result]. The client and worker type their calls through this map. */
export interface EngineRequests {
  load: [LoadParams, ModelInfo];
  countTokens: [CountTokensParams, CountTokensResult];
  ask: [AskParams, AskResultWire];
  clearCache: [Record<string, never>, ClearCacheResult];
  shutdown: [Record<string, never>, null];
}

export interface EngineNotifications {
  progress: ProgressNotification;
  token: TokenNotification;
  log: LogNotification;
}

// ---------------------------------------------------------------------------------------------------------------
// Extension <-> webview

/** One file's share of the meter. */
export interface MeterFile {
  readonly path: string;
  readonly tokens: number;
  readonly included: boolean;
  /** Tokens already in the engine's prefix cache (0 when unknown). */
  readonly cached: number;
}

export interface MeterLeftOut {
  readonly path: string;
  readonly reason: string;
  /** Token count when known (files over the budget); null for skipped files never counted. */
  readonly tokens: number | null;
}

/** What the meter shows: one prompt against the budget. Computed by extension/meter.ts. */
export interface MeterView {
  readonly budget: number;
  readonly window: number | null;
  readonly sinks: number;
  readonly frameTokens: number;
  readonly questionTokens: number;
  readonly answerReserve: number;
  readonly files: readonly MeterFile[];
  /** Frame + included files + question + answer reserve. */
  readonly used: number;
  readonly cachedTokens: number;
  readonly toComputeTokens: number;
  readonly leftOut: readonly MeterLeftOut[];
}

export interface PassageView {
  /** Index in the answer's passage list (rank order). */
  readonly index: number;
  readonly path: string;
  readonly startLine: number;
  readonly endLine: number;
  readonly score: number;
  /** The passage's first lines, as in the document (render with textContent). */
  readonly snippet: string;
}

/** An answer sentence: answer text [start, end) and the passages it drew on (strongest first). */
export interface SentenceView {
  readonly start: number;
  readonly end: number;
  readonly passages: readonly { readonly index: number; readonly weight: number }[];
}

export interface AnswerSummary {
  readonly stopReason: WireStopReason;
  readonly promptTokens: number;
  readonly reusedTokens: number;
  readonly computedTokens: number;
  readonly generatedTokens: number;
  readonly prefillMs: number;
  readonly decodeMs: number;
  /** Absent in a panel state saved before this field existed. */
  readonly quote?: WireQuoteMode;
  /** Absent when the question was read once. */
  readonly reading?: WireReading;
}

/** Notifications from the extension to the webview. Nothing is posted before the webview sends `ready`. */
export type ExtensionToWebviewMessage =
  | { readonly type: 'answerStart'; readonly askId: string; readonly question: string; readonly scope: string }
  | { readonly type: 'answerToken'; readonly askId: string; readonly index: number; readonly text: string }
  | { readonly type: 'answerProgress'; readonly askId: string; readonly label: string }
  | {
      readonly type: 'answerDone';
      readonly askId: string;
      readonly answer: string;
      readonly sentences: readonly SentenceView[];
      readonly summary: AnswerSummary;
    }
  | { readonly type: 'answerError'; readonly askId: string; readonly message: string }
  | { readonly type: 'meter'; readonly meter: MeterView }
  | { readonly type: 'passages'; readonly askId: string; readonly passages: readonly PassageView[] };

/** Commands from the webview to the extension. */
export type WebviewToExtensionMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'revealPassage'; readonly askId: string; readonly index: number }
  | { readonly type: 'askAgain'; readonly question: string }
  | { readonly type: 'cancel'; readonly askId: string };

/** What the webview keeps with vscode.setState and the serializer restores. */
export interface WebviewState {
  readonly version: 1;
  readonly askId: string | null;
  readonly question: string;
  readonly scope: string;
  readonly answer: string;
  readonly sentences: readonly SentenceView[];
  readonly summary: AnswerSummary | null;
  readonly passages: readonly PassageView[];
  readonly meter: MeterView | null;
  readonly error: string | null;
}

// ---------------------------------------------------------------------------------------------------------------
// Guards. Incoming data is untrusted until one of these says otherwise.

type Obj = Record<string, unknown>;

function isObj(x: unknown): x is Obj {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
function isStr(x: unknown, maxLength = 1_000_000): x is string {
  return typeof x === 'string' && x.length <= maxLength;
}
function isNat(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}
function isFiniteNum(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}
function isArrayOf<T>(x: unknown, item: (v: unknown) => v is T): x is T[] {
  return Array.isArray(x) && x.every(item);
}
function isNatOrNull(x: unknown): x is number | null {
  return x === null || isNat(x);
}
const ID_MAX = 200;
/** Longest question (UTF-16 units) the worker takes; longer ones are refused with this number in the message. */
export const MAX_QUESTION_CHARS = 100_000;

export function isWebviewToExtensionMessage(x: unknown): x is WebviewToExtensionMessage {
  if (!isObj(x)) return false;
  switch (x['type']) {
    case 'ready':
      return true;
    case 'revealPassage':
      return isStr(x['askId'], ID_MAX) && isNat(x['index']);
    case 'askAgain':
      return isStr(x['question'], MAX_QUESTION_CHARS);
    case 'cancel':
      return isStr(x['askId'], ID_MAX);
    default:
      return false;
  }
}

function isSentenceView(x: unknown): x is SentenceView {
  return (
    isObj(x) &&
    isNat(x['start']) &&
    isNat(x['end']) &&
    isArrayOf(x['passages'], (p): p is { index: number; weight: number } => isObj(p) && isNat(p['index']) && isFiniteNum(p['weight']))
  );
}

function isPassageView(x: unknown): x is PassageView {
  return (
    isObj(x) &&
    isNat(x['index']) &&
    isStr(x['path']) &&
    isNat(x['startLine']) &&
    isNat(x['endLine']) &&
    isFiniteNum(x['score']) &&
    isStr(x['snippet'])
  );
}

function isAnswerSummary(x: unknown): x is AnswerSummary {
  return (
    isObj(x) &&
    isStopReason(x['stopReason']) &&
    isNat(x['promptTokens']) &&
    isNat(x['reusedTokens']) &&
    isNat(x['computedTokens']) &&
    isNat(x['generatedTokens']) &&
    isFiniteNum(x['prefillMs']) &&
    isFiniteNum(x['decodeMs']) &&
    (x['quote'] === undefined || isQuoteMode(x['quote'])) &&
    (x['reading'] === undefined || isReading(x['reading']))
  );
}

function isReading(x: unknown): x is WireReading {
  return x === 'window' || x === 'memory' || x === 'passage';
}

function isQuoteMode(x: unknown): x is WireQuoteMode {
  return x === 'on' || x === 'released' || x === 'off';
}

function isStopReason(x: unknown): x is WireStopReason {
  return x === 'eos' || x === 'stop' || x === 'length' || x === 'cancelled';
}

export function isMeterView(x: unknown): x is MeterView {
  return (
    isObj(x) &&
    isNat(x['budget']) &&
    isNatOrNull(x['window']) &&
    isNat(x['sinks']) &&
    isNat(x['frameTokens']) &&
    isNat(x['questionTokens']) &&
    isNat(x['answerReserve']) &&
    isNat(x['used']) &&
    isNat(x['cachedTokens']) &&
    isNat(x['toComputeTokens']) &&
    isArrayOf(
      x['files'],
      (f): f is MeterFile => isObj(f) && isStr(f['path']) && isNat(f['tokens']) && typeof f['included'] === 'boolean' && isNat(f['cached']),
    ) &&
    isArrayOf(x['leftOut'], (f): f is MeterLeftOut => isObj(f) && isStr(f['path']) && isStr(f['reason']) && isNatOrNull(f['tokens']))
  );
}

export function isExtensionToWebviewMessage(x: unknown): x is ExtensionToWebviewMessage {
  if (!isObj(x)) return false;
  switch (x['type']) {
    case 'answerStart':
      return isStr(x['askId'], ID_MAX) && isStr(x['question']) && isStr(x['scope']);
    case 'answerToken':
      return isStr(x['askId'], ID_MAX) && isNat(x['index']) && isStr(x['text']);
    case 'answerProgress':
      return isStr(x['askId'], ID_MAX) && isStr(x['label']);
    case 'answerDone':
      return isStr(x['askId'], ID_MAX) && isStr(x['answer']) && isArrayOf(x['sentences'], isSentenceView) && isAnswerSummary(x['summary']);
    case 'answerError':
      return isStr(x['askId'], ID_MAX) && isStr(x['message']);
    case 'meter':
      return isMeterView(x['meter']);
    case 'passages':
      return isStr(x['askId'], ID_MAX) && isArrayOf(x['passages'], isPassageView);
    default:
      return false;
  }
}

/** Validates state read back from vscode.getState or the serializer; anything else is discarded. */
export function isWebviewState(x: unknown): x is WebviewState {
  return (
    isObj(x) &&
    x['version'] === 1 &&
    (x['askId'] === null || isStr(x['askId'], ID_MAX)) &&
    isStr(x['question']) &&
    isStr(x['scope']) &&
    isStr(x['answer']) &&
    isArrayOf(x['sentences'], isSentenceView) &&
    (x['summary'] === null || isAnswerSummary(x['summary'])) &&
    isArrayOf(x['passages'], isPassageView) &&
    (x['meter'] === null || isMeterView(x['meter'])) &&
    (x['error'] === null || isStr(x['error']))
  );
}

function isWireDoc(x: unknown): x is WireDoc {
  return isObj(x) && isStr(x['path'], 4096) && isStr(x['text'], 512 * 1024 * 1024);
}

function uniquePaths(docs: readonly WireDoc[]): boolean {
  return new Set(docs.map((d) => d.path)).size === docs.length;
}

export function isLoadParams(x: unknown): x is LoadParams {
  return (
    isObj(x) &&
    isStr(x['modelDir'], 4096) &&
    x['modelDir'] !== '' &&
    (x['window'] === null || (isNat(x['window']) && x['window'] > 0)) &&
    isNatOrNull(x['sinks']) &&
    typeof x['weights'] === 'boolean' &&
    (x['threads'] === undefined || (isNat(x['threads']) && x['threads'] > 0)) &&
    (x['cacheDir'] === undefined || x['cacheDir'] === null || (isStr(x['cacheDir'], 4096) && x['cacheDir'] !== '')) &&
    (x['cacheMaxBytes'] === undefined || x['cacheMaxBytes'] === null || (isNat(x['cacheMaxBytes']) && x['cacheMaxBytes'] > 0)) &&
    (x['blockSize'] === undefined || (isNat(x['blockSize']) && x['blockSize'] >= MIN_BLOCK_SIZE && x['blockSize'] <= MAX_BLOCK_SIZE)) &&
    (x['memoryTopK'] === undefined || (isNat(x['memoryTopK']) && x['memoryTopK'] <= MAX_MEMORY_TOP_K)) &&
    (x['memoryLexicalWeight'] === undefined ||
      (typeof x['memoryLexicalWeight'] === 'number' && x['memoryLexicalWeight'] >= 0 && x['memoryLexicalWeight'] <= MAX_LEXICAL_WEIGHT)) &&
    (x['memorySecondReading'] === undefined || typeof x['memorySecondReading'] === 'boolean')
  );
}

/** Bounds of the block settings (package.json states the same). */
export const MIN_BLOCK_SIZE = 16;
export const MAX_BLOCK_SIZE = 4096;
export const MAX_MEMORY_TOP_K = 64;
export const MAX_LEXICAL_WEIGHT = 100;

export function isCountTokensParams(x: unknown): x is CountTokensParams {
  return isObj(x) && isArrayOf(x['docs'], isWireDoc) && uniquePaths(x['docs']) && isStr(x['question'], MAX_QUESTION_CHARS);
}

export function isAskParams(x: unknown): x is AskParams {
  return (
    isObj(x) &&
    isStr(x['askId'], ID_MAX) &&
    x['askId'] !== '' &&
    isArrayOf(x['docs'], isWireDoc) &&
    uniquePaths(x['docs']) &&
    isStr(x['question'], MAX_QUESTION_CHARS) &&
    x['question'].trim() !== '' &&
    isNat(x['maxNewTokens']) &&
    x['maxNewTokens'] > 0 &&
    (x['temperature'] === undefined || (isFiniteNum(x['temperature']) && x['temperature'] >= 0)) &&
    (x['seed'] === undefined || isNat(x['seed'])) &&
    (x['stop'] === undefined || isArrayOf(x['stop'], (s): s is string => isStr(s, 1000) && s !== '')) &&
    (x['quote'] === undefined || typeof x['quote'] === 'boolean')
  );
}

function isSourceSpan(x: unknown): x is WireSourceSpan {
  return isObj(x) && isNat(x['doc']) && isNat(x['start']) && isNat(x['end']) && isFiniteNum(x['weight']);
}

export function isProgressNotification(x: unknown): x is ProgressNotification {
  return (
    isObj(x) &&
    isStr(x['askId'], ID_MAX) &&
    (x['phase'] === 'load' || x['phase'] === 'prefill' || x['phase'] === 'decode') &&
    isNat(x['done']) &&
    isNat(x['total']) &&
    isNat(x['reused'])
  );
}

export function isTokenNotification(x: unknown): x is TokenNotification {
  return isObj(x) && isStr(x['askId'], ID_MAX) && isNat(x['index']) && isStr(x['text']) && isArrayOf(x['sources'], isSourceSpan);
}

export function isLogNotification(x: unknown): x is LogNotification {
  return isObj(x) && (x['level'] === 'info' || x['level'] === 'warn' || x['level'] === 'error') && isStr(x['message']);
}

function isWirePassage(x: unknown): x is WirePassage {
  return (
    isObj(x) &&
    isNat(x['doc']) &&
    isStr(x['path']) &&
    isNat(x['start']) &&
    isNat(x['end']) &&
    isNat(x['startLine']) &&
    isNat(x['endLine']) &&
    isFiniteNum(x['score']) &&
    isArrayOf(x['supports'], isNat)
  );
}

export function isModelInfo(x: unknown): x is ModelInfo {
  return (
    isObj(x) &&
    isStr(x['modelDir']) &&
    isStr(x['family']) &&
    isNat(x['maxPositionEmbeddings']) &&
    isNatOrNull(x['window']) &&
    isNat(x['sinks']) &&
    isNat(x['vocabSize']) &&
    typeof x['weightsLoaded'] === 'boolean'
  );
}

export function isCountTokensResult(x: unknown): x is CountTokensResult {
  return (
    isObj(x) &&
    isArrayOf(x['perFile'], (f): f is FileTokens => isObj(f) && isStr(f['path']) && isNat(f['tokens']) && isNat(f['overhead'])) &&
    isNat(x['framePrefixTokens']) &&
    isNat(x['frameSuffixTokens']) &&
    isNat(x['questionTokens']) &&
    isModelInfo(x['model'])
  );
}

export function isAskResultWire(x: unknown): x is AskResultWire {
  const t = isObj(x) ? x['timings'] : undefined;
  return (
    isObj(x) &&
    isStr(x['askId'], ID_MAX) &&
    isStr(x['answer']) &&
    isStopReason(x['stopReason']) &&
    isNat(x['promptTokens']) &&
    isNat(x['reusedTokens']) &&
    isNat(x['computedTokens']) &&
    isNat(x['generatedTokens']) &&
    isObj(t) &&
    isFiniteNum(t['prefillMs']) &&
    isFiniteNum(t['firstTokenMs']) &&
    isFiniteNum(t['decodeMs']) &&
    isArrayOf(x['passages'], isWirePassage) &&
    isArrayOf(x['tokens'], (k): k is WireAnswerToken => isObj(k) && isStr(k['text']) && isArrayOf(k['sources'], isSourceSpan)) &&
    isQuoteMode(x['quote']) &&
    (x['reading'] === undefined || isReading(x['reading']))
  );
}

export function isClearCacheResult(x: unknown): x is ClearCacheResult {
  return isObj(x) && typeof x['cleared'] === 'boolean' && (x['cacheDir'] === null || isStr(x['cacheDir']));
}

export function isEngineErrorData(x: unknown): x is EngineErrorData {
  return (
    isObj(x) &&
    isStr(x['problem']) &&
    (x['file'] === undefined || isStr(x['file'])) &&
    ['bad-model', 'bad-request', 'not-loaded', 'cancelled', 'internal'].includes(x['kind'] as string)
  );
}

/** Result guards per method, so the client checks every reply it gets. */
export const engineResultGuards: { readonly [M in keyof EngineRequests]: (x: unknown) => x is EngineRequests[M][1] } = {
  load: isModelInfo,
  countTokens: isCountTokensResult,
  ask: isAskResultWire,
  clearCache: isClearCacheResult,
  shutdown: (x): x is null => x === null,
};

/** Params guards per method, so the worker checks every request it gets. */
export const engineParamsGuards: { readonly [M in keyof EngineRequests]: (x: unknown) => x is EngineRequests[M][0] } = {
  load: isLoadParams,
  countTokens: isCountTokensParams,
  ask: isAskParams,
  clearCache: (x): x is Record<string, never> => x === undefined || x === null || isObj(x),
  shutdown: (x): x is Record<string, never> => x === undefined || x === null || isObj(x),
};

/** Whether two load requests describe the same engine (so a loaded one can be kept). */
export function sameLoadParams(a: LoadParams, b: LoadParams): boolean {
  return (
    a.modelDir === b.modelDir &&
    a.window === b.window &&
    a.sinks === b.sinks &&
    a.threads === b.threads &&
    (a.cacheDir ?? null) === (b.cacheDir ?? null) &&
    (a.cacheMaxBytes ?? null) === (b.cacheMaxBytes ?? null) &&
    a.blockSize === b.blockSize &&
    a.memoryTopK === b.memoryTopK &&
    a.memoryLexicalWeight === b.memoryLexicalWeight &&
    a.memorySecondReading === b.memorySecondReading
  );
}
