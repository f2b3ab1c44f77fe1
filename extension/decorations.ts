// Highlights the passages an answer drew on, in every visible editor that shows one of their files: intensity by
// score (theme colours from contributes.colors, overview ruler marks), ranges that follow edits (shift, or drop when
// the passage itself is edited), replaced wholesale by the next answer. Also the hover on those ranges.

import * as vscode from 'vscode';
import { applyChanges, type OffsetRange } from './ranges';
import { formatCount } from './meter';

export interface PassageMark {
  readonly askId: string;
  readonly index: number;
  readonly uri: string;
  /** Document offsets (whole lines). */
  range: OffsetRange;
  readonly score: number;
  /** Relative to the answer's strongest passage, in (0, 1]. */
  readonly strength: number;
  readonly path: string;
  readonly startLine: number;
  readonly endLine: number;
  /** The answer sentence this passage supported most (model output: untrusted text). */
  readonly supported: string | null;
}

const LEVELS = ['faint', 'weak', 'medium', 'strong'] as const;

export function levelOf(strength: number): number {
  return Math.min(LEVELS.length - 1, Math.max(0, Math.ceil(strength * LEVELS.length) - 1));
}

export class PassageDecorations implements vscode.HoverProvider, vscode.Disposable {
  private marks: PassageMark[] = [];
  private readonly types: vscode.TextEditorDecorationType[];
  private readonly disposables: vscode.Disposable[] = [];

  constructor() {
    this.types = LEVELS.map((level) =>
      vscode.window.createTextEditorDecorationType({
        isWholeLine: true,
        backgroundColor: new vscode.ThemeColor(`attend.passage.${level}Background`),
        overviewRulerColor: new vscode.ThemeColor('attend.passage.overviewRuler'),
        overviewRulerLane: vscode.OverviewRulerLane.Right,
        rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
      }),
    );
    this.disposables.push(
      ...this.types,
      vscode.window.onDidChangeVisibleTextEditors(() => this.refresh()),
      vscode.workspace.onDidChangeTextDocument((e) => this.follow(e)),
      vscode.languages.registerHoverProvider({ scheme: '*' }, this),
    );
  }

  /** Replaces all marks with a new answer's. Marks whose text no longer matches what was sent are dropped. */
  set(marks: PassageMark[]): void {
    this.marks = marks;
    this.refresh();
  }

  clear(): void {
    this.marks = [];
    this.refresh();
  }

  get count(): number {
    return this.marks.length;
  }

  private follow(e: vscode.TextDocumentChangeEvent): void {
    if (e.contentChanges.length === 0) return;
    const uri = e.document.uri.toString();
    let changed = false;
    const changes = e.contentChanges.map((c) => ({ offset: c.rangeOffset, length: c.rangeLength, text: c.text }));
    this.marks = this.marks.filter((m) => {
      if (m.uri !== uri) return true;
      const next = applyChanges(m.range, changes);
      changed = true;
      if (!next) return false;
      m.range = next;
      return true;
    });
    if (changed) this.refresh(uri);
  }

  private refresh(onlyUri?: string): void {
    for (const editor of vscode.window.visibleTextEditors) {
      const uri = editor.document.uri.toString();
      if (onlyUri !== undefined && uri !== onlyUri) continue;
      const byLevel: vscode.Range[][] = LEVELS.map(() => []);
      for (const m of this.marks) {
        if (m.uri !== uri) continue;
        byLevel[levelOf(m.strength)].push(
          new vscode.Range(editor.document.positionAt(m.range.start), editor.document.positionAt(m.range.end)),
        );
      }
      this.types.forEach((t, i) => editor.setDecorations(t, byLevel[i]));
    }
  }

  provideHover(document: vscode.TextDocument, position: vscode.Position): vscode.Hover | undefined {
    const uri = document.uri.toString();
    const offset = document.offsetAt(position);
    const here = this.marks.filter((m) => m.uri === uri && offset >= m.range.start && offset <= m.range.end);
    if (here.length === 0) return undefined;
    const m = here.reduce((a, b) => (b.score > a.score ? b : a));
    // Untrusted markdown: all text goes through appendText (escaped); only the one panel command may run from a link.
    const md = new vscode.MarkdownString(undefined, true);
    md.isTrusted = { enabledCommands: ['attend.showPanel'] };
    md.supportHtml = false;
    md.appendMarkdown(`$(sparkle) **Attend** passage ${m.index + 1} · score ${(m.score * 100).toFixed(1)}%`);
    md.appendMarkdown(' · lines ');
    md.appendText(`${formatCount(m.startLine + 1)}–${formatCount(m.endLine + 1)}`);
    if (m.supported) {
      md.appendMarkdown('\n\nSupported: ');
      md.appendText(`“${truncate(m.supported, 300)}”`);
    }
    md.appendMarkdown('\n\n[Open the answer panel](command:attend.showPanel "Show the Attend answer")');
    const range = new vscode.Range(document.positionAt(m.range.start), document.positionAt(m.range.end));
    return new vscode.Hover(md, range);
  }

  dispose(): void {
    this.marks = [];
    while (this.disposables.length) this.disposables.pop()?.dispose();
  }
}

function truncate(s: string, n: number): string {
  const one = s.replace(/\s+/g, ' ').trim();
  return one.length > n ? `${one.slice(0, n - 1)}…` : one;
}
