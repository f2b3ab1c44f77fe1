// What Attend offers programmatic callers (other extensions, scripts, the integration tests): the ask commands take
// their question and target as arguments and resolve to an AskOutcome, and activate() returns AttendApi, whose event
// reports each ask as it runs. All shapes are JSON-safe so they survive executeCommand across extension hosts.

import type * as vscode from 'vscode';
import type { AnswerSummary, MeterView, WirePassage } from '../engine/protocol';

/**
 * Arguments of attend.askAboutFile / askAboutSelection / askAboutWorkspace. A bare string is the question; a
 * vscode.Uri (as menus pass it) is the file. Anything missing is asked for in the UI, as from the palette.
 */
export interface AskCommandArgs {
  readonly question?: string;
  /** The file (askAboutFile, askAboutSelection): a Uri or its string form. Default: the active editor's. */
  readonly uri?: vscode.Uri | string;
  /** askAboutSelection: document offsets [start, end). Default: the active editor's selection. */
  readonly selection?: { readonly start: number; readonly end: number };
}

export type AskStatus = 'answered' | 'cancelled' | 'failed' | 'nothing-to-send';

/** One editor highlight an answer left behind (0-based lines, as the decoration covers them). */
export interface HighlightView {
  readonly index: number;
  readonly uri: string;
  readonly startLine: number;
  readonly endLine: number;
  /** 0 faint .. 3 strong. */
  readonly level: number;
}

/** What an ask command resolves to. */
export interface AskOutcome {
  readonly askId: string;
  readonly status: AskStatus;
  readonly question: string;
  /** Scope label ("notes.md", "workspace demo (3 files)"). */
  readonly scope: string;
  /** The meter the prompt was packed with (null when cancelled before counting). */
  readonly meter: MeterView | null;
  readonly answer: string;
  readonly summary: AnswerSummary | null;
  readonly passages: readonly WirePassage[];
  readonly highlights: readonly HighlightView[];
  /** Why it failed, or why nothing was sent. */
  readonly error: string | null;
}

/** An ask as it runs; `end` always comes last, with the outcome's status. */
export type AskEvent =
  | { readonly kind: 'start'; readonly askId: string; readonly question: string }
  | {
      readonly kind: 'progress';
      readonly askId: string;
      readonly phase: 'load' | 'prefill' | 'decode';
      readonly done: number;
      readonly total: number;
      readonly reused: number;
    }
  | { readonly kind: 'token'; readonly askId: string; readonly index: number; readonly text: string }
  | { readonly kind: 'end'; readonly askId: string; readonly status: AskStatus };

/** The exports of the Attend extension (vscode.extensions.getExtension('attend.attend').exports). */
export interface AttendApi {
  readonly onDidAsk: vscode.Event<AskEvent>;
}
