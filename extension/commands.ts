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

async function promptQuestion(placeHolder: string, value = ''): Promise<string | undefined> {
  const q = await vscode.window.showInputBox({ title: 'Attend', prompt: 'Your question', placeHolder, value, ignoreFocusOut: true });
  return q?.trim() ? q.trim() : undefined;
}

const askAboutFile: CommandFactory = (ctx) => async () => {
  const editor = vscode.window.activeTextEditor;
  if (!editor) {
    void vscode.window.showInformationMessage('Attend: open a file first.');
    return;
  }
  const scope = scopeOfEditor(editor, 'file');
  if (!scope) return;
  const question = await promptQuestion(`Ask about ${vscode.workspace.asRelativePath(editor.document.uri)}`);
  if (!question) return;
  await askQuestion(ctx, scope, question);
};

const askAboutSelection: CommandFactory = (ctx) => async () => {
  const editor = vscode.window.activeTextEditor;
  if (!editor) return;
  const scope = scopeOfEditor(editor, 'selection');
  if (!scope) {
    void vscode.window.showInformationMessage('Attend: select some text first.');
    return;
  }
  const question = await promptQuestion('Ask about the selection');
  if (!question) return;
  await askQuestion(ctx, scope, question);
};

const askAboutWorkspace: CommandFactory = (ctx) => async () => {
  if (!vscode.workspace.workspaceFolders?.length) {
    void vscode.window.showInformationMessage('Attend: open a folder first.');
    return;
  }
  const question = await promptQuestion('Ask about the workspace');
  if (!question) return;
  await askQuestion(ctx, { kind: 'workspace' }, question);
};

const askAgain: CommandFactory = (ctx) => async (arg?: unknown) => {
  const history = ctx.history;
  if (history.length === 0) {
    void vscode.window.showInformationMessage('Attend: no questions asked yet.');
    return;
  }
  // From the webview: the same scope as the latest answer, with the (possibly edited) question.
  if (typeof arg === 'string' && arg.trim()) {
    await askQuestion(ctx, history[0].scope, arg.trim());
    return;
  }
  const pick = await vscode.window.showQuickPick(
    history.map((h) => ({ label: h.question, description: h.label, detail: new Date(h.at).toLocaleString(), entry: h })),
    { title: 'Attend: Ask Again', placeHolder: 'Pick a previous question (its scope is gathered afresh)', matchOnDescription: true },
  );
  if (!pick) return;
  const question = await promptQuestion('Edit the question or press Enter', pick.entry.question);
  if (!question) return;
  await askQuestion(ctx, pick.entry.scope as ScopeSpec, question);
};

const showMeter: CommandFactory = (ctx, meter) => async () => {
  const panel = ctx.showPanel(false);
  try {
    const m = (await meter.current()) ?? ctx.lastMeter;
    if (!m) {
      void vscode.window.showInformationMessage('Attend: open a file to see its context meter.');
      return;
    }
    panel.post({ type: 'meter', meter: m });
  } catch (e) {
    void vscode.window.showErrorMessage(`Attend: ${describeError(e)}`);
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
  } catch (e) {
    void vscode.window.showErrorMessage(`Attend: could not clear the cache: ${describeError(e)}`);
  }
  meter.schedule();
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
