// Hosts the answer webview: strict CSP (default-src 'none', nonce'd script, styles from the webview's own source),
// resources only from dist/webview and media/, a `ready` handshake before anything is posted, every incoming message
// guarded, and a serializer so the panel comes back after a reload with the state the webview saved.

import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import { isWebviewToExtensionMessage, type ExtensionToWebviewMessage, type WebviewToExtensionMessage } from '../engine/protocol';

export const PANEL_VIEW_TYPE = 'attend.answer';

export class AnswerPanel {
  private static current: AnswerPanel | undefined;

  private readonly _disposables: vscode.Disposable[] = [];
  private ready = false;
  private disposed = false;
  private queue: ExtensionToWebviewMessage[] = [];

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly extensionUri: vscode.Uri,
    private readonly onCommand: (msg: WebviewToExtensionMessage) => void,
  ) {
    panel.webview.options = AnswerPanel.webviewOptions(extensionUri);
    panel.iconPath = vscode.Uri.joinPath(extensionUri, 'media', 'attend.svg');
    panel.webview.html = this.html();
    this._disposables.push(
      panel.onDidDispose(() => this.dispose()),
      panel.webview.onDidReceiveMessage((raw: unknown) => this.receive(raw)),
    );
  }

  static webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions {
    return {
      enableScripts: true,
      localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist', 'webview'), vscode.Uri.joinPath(extensionUri, 'media')],
    };
  }

  /** The open panel, or a new one beside the editor. */
  static show(extensionUri: vscode.Uri, onCommand: (msg: WebviewToExtensionMessage) => void, preserveFocus = true): AnswerPanel {
    if (AnswerPanel.current) {
      AnswerPanel.current.panel.reveal(undefined, preserveFocus);
      return AnswerPanel.current;
    }
    const panel = vscode.window.createWebviewPanel(
      PANEL_VIEW_TYPE,
      'Attend',
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus },
      { ...AnswerPanel.webviewOptions(extensionUri), retainContextWhenHidden: false },
    );
    return (AnswerPanel.current = new AnswerPanel(panel, extensionUri, onCommand));
  }

  /** Restores a panel VS Code kept across a reload; the webview re-renders from its own saved state. */
  static revive(panel: vscode.WebviewPanel, extensionUri: vscode.Uri, onCommand: (msg: WebviewToExtensionMessage) => void): AnswerPanel {
    AnswerPanel.current?.dispose();
    return (AnswerPanel.current = new AnswerPanel(panel, extensionUri, onCommand));
  }

  static get existing(): AnswerPanel | undefined {
    return AnswerPanel.current;
  }

  post(msg: ExtensionToWebviewMessage): void {
    if (!this.ready) {
      this.queue.push(msg);
      return;
    }
    void this.panel.webview.postMessage(msg);
  }

  private receive(raw: unknown): void {
    if (!isWebviewToExtensionMessage(raw)) return; // not ours, or malformed: ignore
    if (raw.type === 'ready') {
      this.ready = true;
      const queued = this.queue;
      this.queue = [];
      for (const m of queued) void this.panel.webview.postMessage(m);
    }
    this.onCommand(raw);
  }

  private html(): string {
    const webview = this.panel.webview;
    const nonce = randomBytes(16).toString('base64');
    const script = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview', 'main.js'));
    const style = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'media', 'panel.css'));
    const codicons = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'dist', 'webview', 'codicons', 'codicon.css'));
    const csp = [
      `default-src 'none'`,
      `img-src ${webview.cspSource} data:`,
      `style-src ${webview.cspSource}`,
      `font-src ${webview.cspSource}`,
      `script-src 'nonce-${nonce}'`,
    ].join('; ');
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link href="${codicons.toString()}" rel="stylesheet">
<link href="${style.toString()}" rel="stylesheet">
<title>Attend</title>
</head>
<body>
<main id="root" aria-live="polite"></main>
<script nonce="${nonce}" src="${script.toString()}"></script>
</body>
</html>`;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (AnswerPanel.current === this) AnswerPanel.current = undefined;
    this.queue = [];
    this.panel.dispose();
    while (this._disposables.length) this._disposables.pop()?.dispose();
  }
}

/** Registers the serializer that brings the panel back after a window reload. */
export function registerPanelSerializer(extensionUri: vscode.Uri, onCommand: (msg: WebviewToExtensionMessage) => void): vscode.Disposable {
  return vscode.window.registerWebviewPanelSerializer(PANEL_VIEW_TYPE, {
    deserializeWebviewPanel(panel: vscode.WebviewPanel): Promise<void> {
      AnswerPanel.revive(panel, extensionUri, onCommand);
      return Promise.resolve();
    },
  });
}
