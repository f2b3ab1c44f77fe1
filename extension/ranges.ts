// Offsets <-> editor positions for passages, and keeping a passage's range right while its document is edited:
// edits before it shift it, edits after it leave it, edits that touch it drop it (the text the answer drew on is gone).
// Pure: no `vscode`; positions follow VS Code's line rules (\n, \r\n, \r) via engine/budget.

import { lineIndex, offsetToPosition, type LineIndex, type Position } from '../engine/budget';

export interface OffsetRange {
  readonly start: number;
  readonly end: number;
}

export interface PositionRange {
  readonly start: Position;
  readonly end: Position;
}

/** One content change as VS Code reports it: [offset, offset + length) of the old text replaced by `text`. */
export interface TextChange {
  readonly offset: number;
  readonly length: number;
  readonly text: string;
}

export function offsetRangeToPositions(index: LineIndex, range: OffsetRange): PositionRange {
  return { start: offsetToPosition(index, range.start), end: offsetToPosition(index, range.end) };
}

/** Position ranges of many token spans of one text. */
export function spansToPositions(text: string, spans: readonly OffsetRange[]): PositionRange[] {
  const index = lineIndex(text);
  return spans.map((s) => offsetRangeToPositions(index, s));
}

/**
 * The range after one change, or null when the change overlaps it. An insertion exactly at the start shifts it; one
 * exactly at the end leaves it as is.
 */
export function shiftRange(range: OffsetRange, change: TextChange): OffsetRange | null {
  const changeEnd = change.offset + change.length;
  if (changeEnd <= range.start) {
    const delta = change.text.length - change.length;
    return { start: range.start + delta, end: range.end + delta };
  }
  if (change.offset >= range.end) return range;
  return null;
}

/**
 * Applies the changes of one edit event. VS Code's offsets in one event all refer to the text before the event, and
 * the changes do not overlap, so applying them from the last to the first keeps every offset valid.
 */
export function applyChanges(range: OffsetRange, changes: readonly TextChange[]): OffsetRange | null {
  let r: OffsetRange | null = range;
  const ordered = [...changes].sort((a, b) => b.offset - a.offset);
  for (const c of ordered) {
    if (!r) return null;
    r = shiftRange(r, c);
  }
  return r;
}
