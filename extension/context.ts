// The one object commands receive: settings, the engine client (started lazily), the meter, decorations, the panel,
// the question history, and the single place every disposable goes through (pushCleanup).

import * as vscode from 'vscode';
import { EngineClient } from './engineClient';
import { readSettings, type AttendSettings } from './config';
import { PassageDecorations } from './decorations';
import { AnswerPanel } from './panel';
import type { MeterView, WebviewToExtensionMessage } from '../engine/protocol';
import type { ScopeSpec } from './sources';
import type { AskEvent } from './api';

export interface HistoryEntry {
  readonly askId: string;
  readonly question: string;
  readonly scope: ScopeSpec;
  readonly label: string;
  readonly at: number;
  /** Where each ranked passage is, so the panel can reveal it even after a reload. */
  readonly passages: readonly { readonly uri: string; readonly startLine: number; readonly endLine: number }[];
}

const HISTORY_KEY = 'attend.history';
const HISTORY_MAX = 30;

export class Ctx {
  readonly output: vscode.OutputChannel;
  readonly decorations: PassageDecorations;
  /** Every ask as it runs (AttendApi.onDidAsk). */
  readonly askEvents = new vscode.EventEmitter<AskEvent>();
  private clientInstance: EngineClient | null = null;
  private readonly cleanups: vscode.Disposable[] = [];
  /** Document-key lists of contexts the engine was asked about (most recent first), for the meter's cache estimate. */
  cachedContexts: string[][] = [];
  /** The running ask's abort, if any. */
  currentAsk: { readonly askId: string; readonly abort: AbortController } | null = null;
  lastMeter: MeterView | null = null;
  /** Set by the command table: handles commands that arrive from the webview. */
  webviewHandler: (msg: WebviewToExtensionMessage) => void = () => undefined;

  constructor(readonly extension: vscode.ExtensionContext) {
    this.output = vscode.window.createOutputChannel('Attend');
    this.decorations = new PassageDecorations();
    this.pushCleanup(this.output);
    this.pushCleanup(this.decorations);
    this.pushCleanup(this.askEvents);
  }

  pushCleanup(d: vscode.Disposable): void {
    this.cleanups.push(d);
    this.extension.subscriptions.push(d);
  }

  get settings(): AttendSettings {
    return readSettings(this.extension.extensionPath, this.extension.globalStorageUri.fsPath);
  }

  /** The engine client; the worker process itself starts on the first request. The model follows the settings. */
  get client(): EngineClient {
    if (!this.clientInstance) {
      const client = new EngineClient({
        workerPath: vscode.Uri.joinPath(this.extension.extensionUri, 'dist', 'worker.js').fsPath,
        log: (line) => this.output.appendLine(line),
        onDied: (reason) => {
          this.currentAsk = null;
          void vscode.window.showWarningMessage(`Attend: the engine stopped. ${reason.split('\n')[0]}`, 'Show Log').then((pick) => {
            if (pick) this.output.show(true);
          });
        },
      });
      this.clientInstance = client;
      this.pushCleanup({ dispose: () => void client.dispose() });
    }
    const s = this.settings;
    this.clientInstance.setModel({
      modelDir: s.modelDir,
      window: s.window,
      sinks: s.sinkTokens,
      weights: false,
      cacheDir: s.cacheLocation,
      cacheMaxBytes: s.cacheMaxSizeMB > 0 ? s.cacheMaxSizeMB * 1024 * 1024 : null,
      ...(s.cacheBlockSize !== null ? { blockSize: s.cacheBlockSize } : {}),
      ...(s.memoryTopK !== null ? { memoryTopK: s.memoryTopK } : {}),
      ...(s.memoryLexicalWeight !== null ? { memoryLexicalWeight: s.memoryLexicalWeight } : {}),
      ...(s.memorySecondReading !== null ? { memorySecondReading: s.memorySecondReading } : {}),
    });
    return this.clientInstance;
  }

  /**
   * Starts loading the model's weights in the worker, without waiting: called while the user types a question. A
   * failure is only logged here; the ask that follows reports it.
   */
  preloadModel(): void {
    if (!this.settings.modelDir) return;
    this.client.load(true).catch((e: unknown) => this.output.appendLine(`Attend: preloading the model failed: ${String(e)}`));
  }

  get clientStarted(): boolean {
    return this.clientInstance?.isRunning ?? false;
  }

  showPanel(preserveFocus = true): AnswerPanel {
    return AnswerPanel.show(this.extension.extensionUri, (m) => this.webviewHandler(m), preserveFocus);
  }

  get history(): HistoryEntry[] {
    return this.extension.workspaceState.get<HistoryEntry[]>(HISTORY_KEY, []);
  }

  async remember(entry: HistoryEntry): Promise<void> {
    const rest = this.history.filter((h) => h.askId !== entry.askId);
    await this.extension.workspaceState.update(HISTORY_KEY, [entry, ...rest].slice(0, HISTORY_MAX));
  }

  rememberContext(keys: string[]): void {
    if (keys.length === 0) return;
    const same = (a: string[]): boolean => a.length === keys.length && a.every((k, i) => k === keys[i]);
    // The engine keeps 8 prefixes; mirror that.
    this.cachedContexts = [keys, ...this.cachedContexts.filter((c) => !same(c))].slice(0, 8);
  }

  async dispose(): Promise<void> {
    this.currentAsk?.abort.abort();
    const client = this.clientInstance;
    this.clientInstance = null;
    while (this.cleanups.length) this.cleanups.pop()?.dispose();
    await client?.dispose();
  }
}
