// The extension's handle on the engine worker: spawns dist/worker.js lazily on the first request (with the editor's
// own Node: process.execPath + ELECTRON_RUN_AS_NODE), re-sends the model on every start, rejects pending requests
// with the reason when the process dies, and restarts it on the next request. No `vscode` import: unit-testable.

import { spawn, type ChildProcess } from 'node:child_process';
import {
  CancellationTokenSource,
  createMessageConnection,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
  type MessageConnection,
} from 'vscode-jsonrpc/node';
import {
  sameLoadParams,
  EngineErrorCode,
  EngineMethod,
  EngineNotification,
  engineResultGuards,
  isEngineErrorData,
  isLogNotification,
  isProgressNotification,
  isTokenNotification,
  type AskParams,
  type AskResultWire,
  type EngineErrorData,
  type EngineRequests,
  type LoadParams,
  type ModelInfo,
  type ProgressNotification,
  type TokenNotification,
} from '../engine/protocol';

export interface EngineClientOptions {
  /** Absolute path of the bundled worker (dist/worker.js). */
  readonly workerPath: string;
  /** Node binary; defaults to process.execPath (the editor's Electron, run as Node). */
  readonly execPath?: string;
  readonly execArgv?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** Lines of the worker's stderr and the client's own lifecycle messages. */
  readonly log: (line: string) => void;
  /** The worker died unexpectedly; `reason` says how and quotes its last stderr lines. */
  readonly onDied?: (reason: string) => void;
  /** More than this many unexpected deaths within `crashWindowMs` stops automatic restarts until the window passes. */
  readonly maxCrashes?: number;
  readonly crashWindowMs?: number;
}

/** A request failed: the worker's own error (with file and problem) or the worker's death. */
export class EngineRequestError extends Error {
  constructor(
    message: string,
    readonly data: EngineErrorData,
    readonly code: number,
  ) {
    super(message);
    this.name = 'EngineRequestError';
  }
  get cancelled(): boolean {
    return this.data.kind === 'cancelled';
  }
}

export interface AskHandlers {
  readonly signal?: AbortSignal;
  onProgress?(p: ProgressNotification): void;
  onToken?(t: TokenNotification): void;
}

interface Running {
  readonly child: ChildProcess;
  readonly conn: MessageConnection;
  loadedModel: LoadParams | null;
  loadingModel: { readonly params: LoadParams; readonly promise: Promise<void> } | null;
  readonly pending: Set<(e: EngineRequestError) => void>;
  readonly stderrTail: string[];
  stopping: boolean;
}

const STDERR_TAIL_LINES = 20;

export class EngineClient {
  private running: Running | null = null;
  private model: LoadParams | null = null;
  private readonly asks = new Map<string, AskHandlers>();
  private crashes: number[] = [];
  private lastDeath: string | null = null;
  private disposed = false;

  constructor(private readonly opts: EngineClientOptions) {}

  /** Why the worker last died, if it did. */
  get lastDeathReason(): string | null {
    return this.lastDeath;
  }

  get isRunning(): boolean {
    return this.running !== null;
  }

  /** Sets the model every (re)started worker loads first; the current worker reloads on its next request. */
  setModel(params: LoadParams): void {
    this.model = params;
  }

  async load(weights: boolean): Promise<ModelInfo> {
    if (!this.model)
      throw new EngineRequestError(
        'no model folder configured',
        { problem: 'no model folder configured', kind: 'not-loaded' },
        EngineErrorCode.notLoaded,
      );
    const params = { ...this.model, weights };
    const info = await this.request(EngineMethod.load, params);
    if (this.running) this.running.loadedModel = params;
    return info;
  }

  countTokens(params: EngineRequests['countTokens'][0]): Promise<EngineRequests['countTokens'][1]> {
    return this.request(EngineMethod.countTokens, params);
  }

  /** Streams progress and tokens to `handlers`; aborting the signal sends $/cancelRequest. */
  async ask(params: AskParams, handlers: AskHandlers = {}): Promise<AskResultWire> {
    this.asks.set(params.askId, handlers);
    try {
      return await this.request(EngineMethod.ask, params, handlers.signal);
    } finally {
      this.asks.delete(params.askId);
    }
  }

  /** Empties the engine's KV cache, in memory and on disk (starting the worker and loading the model if needed). */
  clearCache(): Promise<EngineRequests['clearCache'][1]> {
    return this.request(EngineMethod.clearCache, {});
  }

  async request<M extends keyof EngineRequests>(
    method: M,
    params: EngineRequests[M][0],
    signal?: AbortSignal,
  ): Promise<EngineRequests[M][1]> {
    if (this.disposed) throw this.error('the engine client was disposed', 'internal');
    if (signal?.aborted) throw this.error('cancelled', 'cancelled', EngineErrorCode.cancelled);
    const r = this.ensureRunning();
    if (method !== EngineMethod.load) await this.ensureModel(r);
    return this.send(r, method, params, signal);
  }

  /** Loads the configured model (config + tokenizer) into this worker once, however many requests wait on it. */
  private ensureModel(r: Running): Promise<void> {
    const want = this.model;
    if (!want || (r.loadedModel && sameLoadParams(r.loadedModel, want))) return Promise.resolve();
    if (r.loadingModel && sameLoadParams(r.loadingModel.params, want)) return r.loadingModel.promise;
    const params = { ...want, weights: false };
    const promise = this.send(r, EngineMethod.load, params).then(() => {
      r.loadedModel = params;
    });
    const entry = { params, promise };
    r.loadingModel = entry;
    void promise
      .finally(() => {
        if (r.loadingModel === entry) r.loadingModel = null;
      })
      .catch(() => undefined);
    return promise;
  }

  private send<M extends keyof EngineRequests>(
    r: Running,
    method: M,
    params: EngineRequests[M][0],
    signal?: AbortSignal,
  ): Promise<EngineRequests[M][1]> {
    return new Promise<EngineRequests[M][1]>((resolve, reject) => {
      const cts = new CancellationTokenSource();
      const onAbort = (): void => cts.cancel();
      signal?.addEventListener('abort', onAbort);
      const fail = (e: EngineRequestError): void => {
        cleanup();
        reject(e);
      };
      const cleanup = (): void => {
        r.pending.delete(fail);
        signal?.removeEventListener('abort', onAbort);
        cts.dispose();
      };
      r.pending.add(fail);
      r.conn.sendRequest(method, params, cts.token).then(
        (result: unknown) => {
          cleanup();
          if (engineResultGuards[method](result)) resolve(result);
          else reject(this.error(`the engine sent a malformed ${method} reply`, 'internal'));
        },
        (e: unknown) => {
          cleanup();
          reject(this.toError(e));
        },
      );
    });
  }

  private toError(e: unknown): EngineRequestError {
    if (e instanceof EngineRequestError) return e;
    if (e instanceof ResponseError) {
      const data: EngineErrorData = isEngineErrorData(e.data)
        ? e.data
        : { problem: e.message, kind: e.code === EngineErrorCode.cancelled ? 'cancelled' : 'internal' };
      return new EngineRequestError(e.message, data, e.code);
    }
    return this.error(e instanceof Error ? e.message : String(e), 'internal');
  }

  private error(message: string, kind: EngineErrorData['kind'], code: number = EngineErrorCode.internal): EngineRequestError {
    return new EngineRequestError(message, { problem: message, kind }, code);
  }

  private ensureRunning(): Running {
    if (this.running) return this.running;
    const now = Date.now();
    const window = this.opts.crashWindowMs ?? 60_000;
    this.crashes = this.crashes.filter((t) => now - t < window);
    if (this.crashes.length >= (this.opts.maxCrashes ?? 3)) {
      throw this.error(
        `the engine crashed ${this.crashes.length} times in the last ${Math.round(window / 1000)} s; not restarting yet. Last failure: ${this.lastDeath ?? 'unknown'}`,
        'internal',
      );
    }
    return (this.running = this.start());
  }

  private start(): Running {
    const execPath = this.opts.execPath ?? process.execPath;
    this.opts.log(`starting engine worker: ${execPath} ${this.opts.workerPath}`);
    const child = spawn(execPath, [...(this.opts.execArgv ?? []), this.opts.workerPath], {
      env: { ...(this.opts.env ?? process.env), ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
    const conn = createMessageConnection(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!));
    const r: Running = { child, conn, loadedModel: null, loadingModel: null, pending: new Set(), stderrTail: [], stopping: false };

    let partial = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        this.opts.log(line);
        r.stderrTail.push(line);
        if (r.stderrTail.length > STDERR_TAIL_LINES) r.stderrTail.shift();
      }
    });
    conn.onNotification(EngineNotification.progress, (p: unknown) => {
      if (isProgressNotification(p)) this.asks.get(p.askId)?.onProgress?.(p);
    });
    conn.onNotification(EngineNotification.token, (t: unknown) => {
      if (isTokenNotification(t)) this.asks.get(t.askId)?.onToken?.(t);
    });
    conn.onNotification(EngineNotification.log, (m: unknown) => {
      if (isLogNotification(m)) this.opts.log(`[${m.level}] ${m.message}`);
    });
    conn.onError(([e]) => this.opts.log(`engine connection error: ${e.message}`));
    // Writes to a dead process fail with EPIPE; the exit handler reports the death.
    child.stdin!.on('error', (e) => this.opts.log(`engine stdin: ${e.message}`));
    child.on('error', (e) => this.died(r, `could not start the engine (${execPath}): ${e.message}`));
    child.on('exit', (code, signal) => {
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const tail = r.stderrTail.filter((l) => l.trim() !== '').slice(-5);
      this.died(r, `the engine ${how}${tail.length ? `:\n${tail.join('\n')}` : ''}`);
    });
    conn.listen();
    return r;
  }

  private died(r: Running, reason: string): void {
    if (this.running !== r) return;
    this.running = null;
    r.conn.dispose();
    const expected = r.stopping || this.disposed;
    const err = this.error(expected ? 'the engine was stopped' : reason, 'internal');
    for (const fail of [...r.pending]) fail(err);
    if (expected) return;
    this.lastDeath = reason;
    this.crashes.push(Date.now());
    this.opts.log(reason);
    this.opts.onDied?.(reason);
  }

  /** Stops the worker (it restarts on the next request). */
  async stop(): Promise<void> {
    const r = this.running;
    if (!r) return;
    r.stopping = true;
    const exited = new Promise<void>((resolve) => r.child.once('exit', () => resolve()));
    try {
      await Promise.race([r.conn.sendRequest(EngineMethod.shutdown, {}), delay(2000)]);
    } catch {
      // Already gone.
    }
    r.child.stdin?.end();
    const killed = delay(3000).then(() => {
      if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    });
    await Promise.race([exited, killed]);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    await this.stop();
    this.disposed = true;
    this.asks.clear();
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
