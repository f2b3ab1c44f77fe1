// Shared by the integration suite, which runs INSIDE a real VS Code extension host (code-server through
// test/e2e/in-host/entry.ts, or desktop VS Code through @vscode/test-electron): the extension under test, its API,
// the workspace (a temporary copy of test/e2e/fixtures/attend-workspace), the model the engine uses, and an
// independent count of the prompt with the engine's own library.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { AskEvent, AskOutcome, AttendApi } from '../../extension/api';
import type { ClearCacheResult, MeterView } from '../../engine/protocol';
import { loadTokenizer } from '../../engine/tokenizer';
import { loadChatTemplate, renderChat } from '../../engine/chat';
import { assemblePrompt, frameFromTemplate } from '../../engine/prompt';

export const EXTENSION_ID = 'attend.attend';

export async function attend(): Promise<{ ext: vscode.Extension<AttendApi>; api: AttendApi }> {
  const ext = vscode.extensions.getExtension<AttendApi>(EXTENSION_ID);
  if (!ext) throw new Error(`extension ${EXTENSION_ID} is not installed`);
  const api = await ext.activate();
  return { ext, api };
}

export function workspaceRoot(): vscode.Uri {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) throw new Error('no workspace folder open (the runner opens a copy of test/e2e/fixtures/attend-workspace)');
  return folder.uri;
}

export function wsFile(rel: string): vscode.Uri {
  return vscode.Uri.joinPath(workspaceRoot(), ...rel.split('/'));
}

export async function writeFile(rel: string, data: string | Uint8Array): Promise<vscode.Uri> {
  const uri = wsFile(rel);
  await vscode.workspace.fs.writeFile(uri, typeof data === 'string' ? new TextEncoder().encode(data) : data);
  return uri;
}

/** The model folder the extension uses: attend.model.path, else the built-in one. */
export function modelDir(extensionPath: string): string {
  const configured = vscode.workspace.getConfiguration('attend').get<string>('model.path', '').trim();
  return configured || path.join(extensionPath, 'models', 'attend-default');
}

export function usesBuiltInModel(): boolean {
  return vscode.workspace.getConfiguration('attend').get<string>('model.path', '').trim() === '';
}

/** config.json max_position_embeddings of a model folder. */
export function contextLength(model: string): number {
  const cfg = JSON.parse(fs.readFileSync(path.join(model, 'config.json'), 'utf8')) as { max_position_embeddings?: number };
  return cfg.max_position_embeddings ?? 2048;
}

/** Prompt length as the engine's library assembles it (tokenizer + chat-template frame), independent of the worker. */
export function promptTokens(model: string, docs: { path: string; text: string }[], question: string): number {
  const tok = loadTokenizer(model);
  const template = loadChatTemplate(model);
  const frame = frameFromTemplate(
    template ? (content) => renderChat(template, [{ role: 'user', content }], { addGenerationPrompt: true }) : null,
  );
  return assemblePrompt(tok, frame, docs, question).ids.length;
}

export async function askFile(args: { question: string; uri?: vscode.Uri }): Promise<AskOutcome> {
  return mustOutcome(await vscode.commands.executeCommand<AskOutcome | undefined>('attend.askAboutFile', args));
}

export async function askSelection(args: {
  question: string;
  uri: vscode.Uri;
  selection: { start: number; end: number };
}): Promise<AskOutcome> {
  return mustOutcome(await vscode.commands.executeCommand<AskOutcome | undefined>('attend.askAboutSelection', args));
}

export async function askWorkspace(question: string): Promise<AskOutcome> {
  return mustOutcome(await vscode.commands.executeCommand<AskOutcome | undefined>('attend.askAboutWorkspace', { question }));
}

export async function showMeter(): Promise<MeterView | undefined> {
  return vscode.commands.executeCommand<MeterView | undefined>('attend.showMeter');
}

export async function clearCache(): Promise<ClearCacheResult | undefined> {
  return vscode.commands.executeCommand<ClearCacheResult | undefined>('attend.clearCache');
}

function mustOutcome(o: AskOutcome | undefined): AskOutcome {
  if (!o) throw new Error('the ask command returned nothing (it asked for input instead of taking the question argument?)');
  return o;
}

/** An answered outcome, or an error that says why not. */
export function answered(o: AskOutcome): AskOutcome & { summary: NonNullable<AskOutcome['summary']>; meter: MeterView } {
  if (o.status !== 'answered' || !o.summary || !o.meter) throw new Error(`ask ${o.status}: ${o.error ?? 'no summary'}`);
  return o as AskOutcome & { summary: NonNullable<AskOutcome['summary']>; meter: MeterView };
}

/** Records every AskEvent until disposed. */
export function recordEvents(api: AttendApi): { events: AskEvent[]; of(askId: string): AskEvent[]; dispose(): void } {
  const events: AskEvent[] = [];
  const sub = api.onDidAsk((e) => events.push(e));
  return { events, of: (askId) => events.filter((e) => e.askId === askId), dispose: () => sub.dispose() };
}

export async function openEditor(uri: vscode.Uri): Promise<vscode.TextEditor> {
  const doc = await vscode.workspace.openTextDocument(uri);
  return vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.One, preview: false });
}

/** Sets a user (global) setting for the duration of `fn`. */
export async function withSetting<T>(key: string, value: unknown, fn: () => Promise<T>): Promise<T> {
  const cfg = vscode.workspace.getConfiguration('attend');
  const before = cfg.inspect(key)?.globalValue;
  await cfg.update(key, value, vscode.ConfigurationTarget.Global);
  try {
    return await fn();
  } finally {
    await vscode.workspace.getConfiguration('attend').update(key, before, vscode.ConfigurationTarget.Global);
  }
}

/** Hover texts (markdown source) at a position, from every hover provider. */
export async function hoversAt(uri: vscode.Uri, position: vscode.Position): Promise<string[]> {
  const hovers = (await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', uri, position)) ?? [];
  return hovers.flatMap((h) => h.contents.map((c) => (typeof c === 'string' ? c : 'value' in c ? c.value : '')));
}

export function attendHover(texts: string[]): string | undefined {
  return texts.find((t) => t.includes('**Attend** passage'));
}

/** Files (recursively) under a folder; [] when it does not exist. */
export function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

export function answerPanelOpen(): boolean {
  return vscode.window.tabGroups.all
    .flatMap((g) => g.tabs)
    .some((t) => t.input instanceof vscode.TabInputWebview && t.input.viewType.endsWith('attend.answer'));
}
