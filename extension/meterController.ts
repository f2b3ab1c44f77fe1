// The status bar meter: what "ask about this" would cost for the active editor (its selection if any, else the file),
// counted by the engine's own tokenizer (no model run), refreshed with a debounce as the editor or selection changes.

import * as vscode from 'vscode';
import type { Ctx } from './context';
import { documentDoc, type Gathered } from './sources';
import { breakdownLines, statusText, type MeterResult } from './meter';
import { measure, describeError } from './ask';

const DEBOUNCE_MS = 400;

export class MeterController implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly disposables: vscode.Disposable[] = [];
  private timer: NodeJS.Timeout | undefined;
  private generation = 0;
  /** Last counted input, so an unchanged editor is not recounted. */
  private lastKey = '';

  constructor(private readonly ctx: Ctx) {
    this.item = vscode.window.createStatusBarItem('attend.meter', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'Attend Context Meter';
    this.item.command = 'attend.showMeter';
    this.disposables.push(
      this.item,
      vscode.window.onDidChangeActiveTextEditor(() => this.schedule()),
      vscode.window.onDidChangeTextEditorSelection((e) => {
        if (e.textEditor === vscode.window.activeTextEditor) this.schedule();
      }),
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.document === vscode.window.activeTextEditor?.document) this.schedule();
      }),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('attend')) {
          this.lastKey = '';
          this.schedule();
        }
      }),
    );
  }

  schedule(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.update(), DEBOUNCE_MS);
  }

  /** The meter of the active editor right now (null without one). */
  async current(): Promise<MeterResult | null> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) return null;
    const sel = editor.selection;
    const doc = sel.isEmpty
      ? documentDoc(editor.document)
      : documentDoc(editor.document, { start: editor.document.offsetAt(sel.start), end: editor.document.offsetAt(sel.end) });
    const gathered: Gathered = {
      scope: { kind: sel.isEmpty ? 'file' : 'selection', uri: editor.document.uri.toString() },
      label: doc.path,
      docs: [doc],
      skipped: [],
    };
    return (await measure(this.ctx, gathered, '')).meter;
  }

  private async update(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor || editor.document.uri.scheme === 'output') {
      this.item.hide();
      return;
    }
    const key = `${editor.document.uri.toString()}@${editor.document.version}:${editor.document.offsetAt(editor.selection.start)}-${editor.document.offsetAt(editor.selection.end)}`;
    if (key === this.lastKey) return;
    const gen = ++this.generation;
    try {
      const meter = await this.current();
      if (gen !== this.generation || !meter) return;
      this.lastKey = key;
      this.item.text = `$(symbol-ruler) ${statusText(meter)}`;
      const tip = new vscode.MarkdownString(undefined, true);
      tip.appendMarkdown(`**Attend context meter** (${editor.selection.isEmpty ? 'current file' : 'selection'})\n\n`);
      tip.appendCodeblock(breakdownLines(meter).join('\n'), 'text');
      this.item.tooltip = tip;
      this.item.backgroundColor = meter.leftOut.length > 0 ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
      this.item.show();
    } catch (e) {
      if (gen !== this.generation) return;
      this.item.text = '$(warning) Attend';
      this.item.tooltip = `Attend cannot count tokens: ${describeError(e)}`;
      this.item.show();
    }
  }

  dispose(): void {
    clearTimeout(this.timer);
    while (this.disposables.length) this.disposables.pop()?.dispose();
  }
}
