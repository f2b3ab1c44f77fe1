// The command table: each entry is a factory (ctx) => handler with early returns. activate() registers them as
// `attend.<name>`; package.json contributes the same names.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from './context';
import { askQuestion, describeError, revealPassage } from './ask';
import { scopeOfEditor, type ScopeSpec } from './sources';
import type { MeterController } from './meterController';
import type { WebviewToExtensionMessage } from '../engine/protocol';

export type CommandFactory = (ctx: Ctx, meter: MeterController) => (...args: unknown[]) => unknown;

/**
 * Asks for the question. The model loads meanwhile (ctx.preloadModel): loading the weights and, for a small model,
 * rehearsing an ask (Engine.rehearse) take well under a second that would otherwise come after the question.
 */
async function promptQuestion(ctx: Ctx, placeHolder: string, value = ''): Promise<string | undefined> {
  ctx.preloadModel();
  const q = await vscode.window.showInputBox({ title: 'Attend', prompt: 'Your question', placeHolder, value, ignoreFocusOut: true });
  return q?.trim() ? q.trim() : undefined;
}

/** The ask commands' argument: a question, a Uri (editor menus pass the file), or AskCommandArgs. */
function askArgs(arg: unknown): { question?: string; uri?: vscode.Uri; selection?: { start: number; end: number } } {
  if (typeof arg === 'string') return arg.trim() ? { question: arg.trim() } : {};
  if (arg instanceof vscode.Uri) return { uri: arg };
  if (typeof arg !== 'object' || arg === null) return {};
  const o = arg as Record<string, unknown>;
  const out: { question?: string; uri?: vscode.Uri; selection?: { start: number; end: number } } = {};
  if (typeof o['question'] === 'string' && o['question'].trim()) out.question = o['question'].trim();
  if (o['uri'] instanceof vscode.Uri) out.uri = o['uri'];
  else if (typeof o['uri'] === 'string' && o['uri'])
    out.uri = o['uri'].includes(':') ? vscode.Uri.parse(o['uri']) : vscode.Uri.file(o['uri']);
  const sel = o['selection'] as Record<string, unknown> | undefined;
  if (sel && Number.isInteger(sel['start']) && Number.isInteger(sel['end']) && (sel['start'] as number) < (sel['end'] as number))
    out.selection = { start: Math.max(0, sel['start'] as number), end: sel['end'] as number };
  return out;
}

const askAboutFile: CommandFactory = (ctx) => async (arg?: unknown) => {
  const args = askArgs(arg);
  const uri = args.uri ?? vscode.window.activeTextEditor?.document.uri;
  if (!uri) {
    void vscode.window.showInformationMessage('Attend: open a file first.');
    return undefined;
  }
  const question = args.question ?? (await promptQuestion(ctx, `Ask about ${vscode.workspace.asRelativePath(uri)}`));
  if (!question) return undefined;
  return askQuestion(ctx, { kind: 'file', uri: uri.toString() }, question);
};

const askAboutSelection: CommandFactory = (ctx) => async (arg?: unknown) => {
  const args = askArgs(arg);
  const editor = vscode.window.activeTextEditor;
  let scope: ScopeSpec | null = null;
  if (args.selection) {
    const uri = args.uri ?? editor?.document.uri;
    if (uri) scope = { kind: 'selection', uri: uri.toString(), selection: args.selection };
  } else if (editor && (!args.uri || args.uri.toString() === editor.document.uri.toString())) {
    scope = scopeOfEditor(editor, 'selection');
  }
  if (!scope) {
    void vscode.window.showInformationMessage('Attend: select some text first.');
    return undefined;
  }
  const question = args.question ?? (await promptQuestion(ctx, 'Ask about the selection'));
  if (!question) return undefined;
  return askQuestion(ctx, scope, question);
};

const askAboutWorkspace: CommandFactory = (ctx) => async (arg?: unknown) => {
  if (!vscode.workspace.workspaceFolders?.length) {
    void vscode.window.showInformationMessage('Attend: open a folder first.');
    return undefined;
  }
  const question = askArgs(arg).question ?? (await promptQuestion(ctx, 'Ask about the workspace'));
  if (!question) return undefined;
  return askQuestion(ctx, { kind: 'workspace' }, question);
};

const askAgain: CommandFactory = (ctx) => async (arg?: unknown) => {
  const history = ctx.history;
  if (history.length === 0) {
    void vscode.window.showInformationMessage('Attend: no questions asked yet.');
    return undefined;
  }
  // From the webview: the same scope as the latest answer, with the (possibly edited) question.
  if (typeof arg === 'string' && arg.trim()) return askQuestion(ctx, history[0].scope, arg.trim());
  const pick = await vscode.window.showQuickPick(
    history.map((h) => ({ label: h.question, description: h.label, detail: new Date(h.at).toLocaleString(), entry: h })),
    { title: 'Attend: Ask Again', placeHolder: 'Pick a previous question (its scope is gathered afresh)', matchOnDescription: true },
  );
  if (!pick) return undefined;
  const question = await promptQuestion(ctx, 'Edit the question or press Enter', pick.entry.question);
  if (!question) return undefined;
  return askQuestion(ctx, pick.entry.scope as ScopeSpec, question);
};

const showMeter: CommandFactory = (ctx, meter) => async () => {
  const panel = ctx.showPanel(false);
  try {
    const m = (await meter.current()) ?? ctx.lastMeter;
    if (!m) {
      void vscode.window.showInformationMessage('Attend: open a file to see its context meter.');
      return undefined;
    }
    panel.post({ type: 'meter', meter: m });
    return m;
  } catch (e) {
    void vscode.window.showErrorMessage(`Attend: ${describeError(e)}`);
    return undefined;
  }
};

const showPanel: CommandFactory = (ctx) => () => {
  ctx.showPanel(false);
};

const selectModelFolder: CommandFactory = (ctx, meter) => async () => {
  const picked = await vscode.window.showOpenDialog({
    canSelectFolders: true,
    canSelectFiles: false,
    canSelectMany: false,
    openLabel: 'Use This Model',
    title: 'Attend: a Hugging Face model folder (config.json, *.safetensors, tokenizer.json)',
  });
  const dir = picked?.[0]?.fsPath;
  if (!dir) return;
  const missing = ['config.json', 'tokenizer.json'].filter((f) => !fs.existsSync(path.join(dir, f)));
  if (missing.length > 0) {
    void vscode.window.showErrorMessage(`Attend: ${dir} is not a model folder (missing ${missing.join(', ')}).`);
    return;
  }
  // Machine scope: a user setting, never written into the workspace.
  await vscode.workspace.getConfiguration('attend').update('model.path', dir, vscode.ConfigurationTarget.Global);
  try {
    const info = await ctx.client.load(false);
    void vscode.window.showInformationMessage(
      `Attend: using ${info.family} model in ${dir} (context ${info.maxPositionEmbeddings.toLocaleString('en-US')}, ${info.window === null ? 'full attention' : `window ${info.window.toLocaleString('en-US')}`}).`,
    );
  } catch (e) {
    void vscode.window.showErrorMessage(`Attend: ${describeError(e)}`);
  }
  meter.schedule();
};

const clearCache: CommandFactory = (ctx, meter) => async () => {
  ctx.cachedContexts = [];
  try {
    // The engine owns the store's layout, so it does the clearing (memory and disk) itself.
    const r = await vscode.window.withProgress({ location: vscode.ProgressLocation.Window, title: 'Attend: clearing the cache' }, () =>
      ctx.client.clearCache(),
    );
    void vscode.window.showInformationMessage(`Attend: cache cleared${r.cacheDir ? ` (${r.cacheDir})` : ''}.`);
    meter.schedule();
    return r;
  } catch (e) {
    void vscode.window.showErrorMessage(`Attend: could not clear the cache: ${describeError(e)}`);
    meter.schedule();
    return undefined;
  }
};

const clearHighlights: CommandFactory = (ctx) => () => {
  ctx.decorations.clear();
};

const cancel: CommandFactory = (ctx) => () => {
  ctx.currentAsk?.abort.abort();
};

/** Command name (after `attend.`) -> factory. */
export function createCommands(): Record<string, CommandFactory> {
  return {
    askAboutFile,
    askAboutSelection,
    askAboutWorkspace,
    askAgain,
    showMeter,
    showPanel,
    selectModelFolder,
    clearCache,
    clearHighlights,
    cancel,
  };
}

/** Commands from the webview, already guarded by the panel. */
export function webviewCommandHandler(ctx: Ctx): (msg: WebviewToExtensionMessage) => void {
  return (msg) => {
    switch (msg.type) {
      case 'ready':
        if (ctx.lastMeter) ctx.showPanel().post({ type: 'meter', meter: ctx.lastMeter });
        return;
      case 'revealPassage':
        void revealPassage(ctx, msg.askId, msg.index);
        return;
      case 'askAgain':
        void vscode.commands.executeCommand('attend.askAgain', msg.question);
        return;
      case 'cancel':
        if (ctx.currentAsk?.askId === msg.askId) ctx.currentAsk.abort.abort();
        return;
    }
  };
}
