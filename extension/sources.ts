// Gathers the documents of one scope through VS Code's API: the current file, the primary selection, or the workspace
// (findFiles with attend.include, minus files.exclude / search.exclude / attend.exclude / .gitignore). Binary, too
// large and unreadable files come back in `skipped` with the reason; nothing is dropped silently.

import { createHash } from 'node:crypto';
import * as vscode from 'vscode';
import { decodeText, DEFAULT_MAX_FILE_BYTES, formatBytes } from '../engine/sources';
import { excludedBecause, findFilesExclude, GitignoreSet, GlobSet, workspaceFilter, type GitignoreFile } from './globs';

export type ScopeKind = 'file' | 'selection' | 'workspace';

/** What to gather; kept in the history so "Ask Again" can gather the same scope afresh. */
export interface ScopeSpec {
  readonly kind: ScopeKind;
  /** The file (file and selection scopes). */
  readonly uri?: string;
  /** Selection as document offsets. */
  readonly selection?: { readonly start: number; readonly end: number };
}

export interface GatheredDoc {
  readonly uri: vscode.Uri;
  /** Display path, unique within one gathering (the name the model sees). */
  readonly path: string;
  /** The text sent: the whole file or the selected part. */
  readonly text: string;
  /** Offset of `text` in the file (the selection start; 0 for whole files). */
  readonly baseOffset: number;
  /** Content identity for the cache estimate. */
  readonly key: string;
  /** Last modification, ms since the epoch (now for an editor with unsaved changes); workspace scope only. */
  readonly modified?: number;
}

export interface Gathered {
  readonly scope: ScopeSpec;
  readonly label: string;
  readonly docs: GatheredDoc[];
  readonly skipped: { readonly path: string; readonly reason: string }[];
}

/** findFiles stops here; the rest is reported as left out. */
const MAX_WORKSPACE_FILES = 5000;

export function contentKey(path: string, text: string): string {
  return `${path}#${createHash('sha1').update(text).digest('hex').slice(0, 16)}`;
}

function displayPath(uri: vscode.Uri): string {
  const multi = (vscode.workspace.workspaceFolders?.length ?? 0) > 1;
  return vscode.workspace.asRelativePath(uri, multi);
}

/** The scope of the active editor: its selection when one is asked for (and not empty), else the file. */
export function scopeOfEditor(editor: vscode.TextEditor, kind: 'file' | 'selection'): ScopeSpec | null {
  const uri = editor.document.uri.toString();
  if (kind === 'file') return { kind, uri };
  const sel = editor.selection;
  if (sel.isEmpty) return null;
  return { kind, uri, selection: { start: editor.document.offsetAt(sel.start), end: editor.document.offsetAt(sel.end) } };
}

export function documentDoc(document: vscode.TextDocument, selection?: { start: number; end: number }): GatheredDoc {
  const full = document.getText();
  const rel = displayPath(document.uri);
  if (!selection) return { uri: document.uri, path: rel, text: full, baseOffset: 0, key: contentKey(rel, full) };
  const text = full.slice(selection.start, selection.end);
  const a = document.positionAt(selection.start).line + 1;
  const b = document.positionAt(selection.end).line + 1;
  const path = `${rel} (lines ${a}-${b})`;
  return { uri: document.uri, path, text, baseOffset: selection.start, key: contentKey(path, text) };
}

export async function gather(
  scope: ScopeSpec,
  settings: { include: readonly string[]; exclude: readonly string[] },
  token?: vscode.CancellationToken,
): Promise<Gathered> {
  if (scope.kind === 'workspace') return gatherWorkspace(scope, settings, token);
  const uri = vscode.Uri.parse(scope.uri ?? '');
  const document = await vscode.workspace.openTextDocument(uri);
  if (scope.kind === 'selection' && scope.selection) {
    // The document may have changed since the selection was taken: clamp to its current length.
    const len = document.getText().length;
    const sel = { start: Math.min(scope.selection.start, len), end: Math.min(scope.selection.end, len) };
    const doc = documentDoc(document, sel);
    return { scope, label: `selection of ${doc.path}`, docs: [doc], skipped: [] };
  }
  const doc = documentDoc(document);
  return { scope, label: doc.path, docs: [doc], skipped: [] };
}

async function gatherWorkspace(
  scope: ScopeSpec,
  settings: { include: readonly string[]; exclude: readonly string[] },
  token?: vscode.CancellationToken,
): Promise<Gathered> {
  const folders = vscode.workspace.workspaceFolders ?? [];
  const skipped: { path: string; reason: string }[] = [];
  const docs: GatheredDoc[] = [];
  if (folders.length === 0) return { scope, label: 'workspace (no folder open)', docs, skipped };
  const filter = workspaceFilter({
    attendInclude: settings.include,
    attendExclude: settings.exclude,
    filesExclude: vscode.workspace.getConfiguration('files').get('exclude'),
    searchExclude: vscode.workspace.getConfiguration('search').get('exclude'),
  });
  const excludes = new GlobSet(filter.exclude);
  const excludeGlob = findFilesExclude(filter.exclude);
  const open = new Map(vscode.workspace.textDocuments.map((d) => [d.uri.toString(), d]));

  for (const folder of folders) {
    const found = new Map<string, vscode.Uri>();
    for (const pattern of filter.include) {
      const uris = await vscode.workspace.findFiles(
        new vscode.RelativePattern(folder, pattern),
        excludeGlob === null ? null : new vscode.RelativePattern(folder, excludeGlob),
        MAX_WORKSPACE_FILES + 1,
        token,
      );
      for (const u of uris) found.set(u.toString(), u);
    }
    const gitignores = await readGitignores(folder, excludeGlob, token);
    const rel = (u: vscode.Uri): string => vscode.workspace.asRelativePath(u, false);
    const uris = [...found.values()].sort((a, b) => (rel(a) < rel(b) ? -1 : rel(a) > rel(b) ? 1 : 0));
    for (const [i, uri] of uris.entries()) {
      if (token?.isCancellationRequested) break;
      if (docs.length >= MAX_WORKSPACE_FILES) {
        skipped.push({ path: displayPath(uri), reason: `more than ${MAX_WORKSPACE_FILES} files matched; ${uris.length - i} not read` });
        break;
      }
      if (excludedBecause(rel(uri), excludes, gitignores) !== null) continue;
      const doc = await readWorkspaceFile(uri, open.get(uri.toString()));
      if ('reason' in doc) skipped.push(doc);
      else docs.push(doc);
    }
  }
  const names = folders.map((f) => f.name).join(', ');
  return { scope, label: `workspace ${names} (${docs.length} files)`, docs, skipped };
}

async function readGitignores(
  folder: vscode.WorkspaceFolder,
  excludeGlob: string | null,
  token?: vscode.CancellationToken,
): Promise<GitignoreSet> {
  const uris = await vscode.workspace.findFiles(
    new vscode.RelativePattern(folder, '**/.gitignore'),
    excludeGlob === null ? null : new vscode.RelativePattern(folder, excludeGlob),
    1000,
    token,
  );
  const files: GitignoreFile[] = [];
  for (const uri of uris) {
    try {
      const text = new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
      const rel = vscode.workspace.asRelativePath(uri, false);
      files.push({ dir: rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '', text });
    } catch {
      // An unreadable .gitignore ignores nothing.
    }
  }
  return new GitignoreSet(files);
}

async function readWorkspaceFile(
  uri: vscode.Uri,
  open: vscode.TextDocument | undefined,
): Promise<GatheredDoc | { path: string; reason: string }> {
  const path = displayPath(uri);
  // An open editor's text (maybe unsaved) is what the user sees and what decorations will apply to.
  if (open) {
    let modified = Date.now();
    if (!open.isDirty)
      modified = await vscode.workspace.fs.stat(uri).then(
        (st) => st.mtime,
        () => modified,
      );
    return { ...documentDoc(open), modified };
  }
  try {
    const stat = await vscode.workspace.fs.stat(uri);
    if (stat.size > DEFAULT_MAX_FILE_BYTES)
      return { path, reason: `too large (${formatBytes(stat.size)} > limit ${formatBytes(DEFAULT_MAX_FILE_BYTES)})` };
    const decoded = decodeText(await vscode.workspace.fs.readFile(uri));
    if (decoded.kind === 'binary') return { path, reason: decoded.reason };
    return { uri, path, text: decoded.text, baseOffset: 0, key: contentKey(path, decoded.text), modified: stat.mtime };
  } catch (e) {
    return { path, reason: `unreadable (${e instanceof Error ? e.message : String(e)})` };
  }
}
