// Prompt assembly: documents + question inside the model's chat template, with every token mapped to its source.
import type { Encoding, Tokenizer } from './types';
import { loadChatTemplate, renderChat } from './chat';

export interface SourceDoc {
  /** Display path (workspace-relative in the extension). */
  readonly path: string;
  readonly text: string;
}

/** Where a prompt token came from. doc = -1 for template, separators and the question. */
export interface TokenOrigin {
  readonly doc: Int32Array;
  /** UTF-16 [start, end) in the document's text; -1 when doc = -1. */
  readonly start: Int32Array;
  readonly end: Int32Array;
}

export interface DocSpan {
  readonly path: string;
  /** Token range [tokenStart, tokenEnd) of the document's own text inside the prompt. */
  readonly tokenStart: number;
  readonly tokenEnd: number;
}

export interface Prompt {
  readonly ids: number[];
  readonly origin: TokenOrigin;
  readonly docs: readonly DocSpan[];
  /** Tokens before the question: the part worth caching across questions. */
  readonly contextLength: number;
}

/** The pieces of text around the user content, taken from the chat template. */
export interface PromptFrame {
  readonly prefix: string;
  readonly suffix: string;
}

const SENTINEL = '\u0000ATTEND_CONTENT\u0000';

/** Splits a rendered chat template around the user content. `render` renders one user message with a generation prompt. */
export function frameFromTemplate(render: ((content: string) => string) | null): PromptFrame {
  if (!render) return { prefix: '', suffix: '\nAnswer: ' };
  const text = render(SENTINEL);
  const at = text.indexOf(SENTINEL);
  if (at < 0 || text.indexOf(SENTINEL, at + 1) >= 0) {
    throw new Error('chat template does not place the user message exactly once; cannot build a prompt around it');
  }
  return { prefix: text.slice(0, at), suffix: text.slice(at + SENTINEL.length) };
}

/** The frame of a model folder: its chat template around one user message with a generation prompt. */
export function loadPromptFrame(dir: string): PromptFrame {
  const template = loadChatTemplate(dir);
  return frameFromTemplate(template ? (content) => renderChat(template, [{ role: 'user', content }], { addGenerationPrompt: true }) : null);
}

export function docHeader(path: string): string {
  // Quotes in a path would break the header's shape; the model only needs to see a stable name.
  return `<doc name="${path.replace(/["\n\r]/g, '_')}">\n`;
}
export const DOC_FOOTER = '\n</doc>\n';
export const QUESTION_PREFIX = 'Question: ';

/**
 * Token layout: prefix | for each doc: header, text, footer | "Question: " + question | suffix.
 * Each piece is encoded on its own (the default model was trained on exactly this), so a document's tokens do not
 * depend on its neighbours and a cached prefix stays valid when later documents change.
 * Template text may contain special tokens; documents and the question never do (their special-token text stays text).
 */
export function assemblePrompt(
  tok: Tokenizer,
  frame: PromptFrame,
  docs: readonly SourceDoc[],
  question: string,
  encodeDoc: (text: string) => Encoding = (text) => tok.encodeWithOffsets(text, { allowSpecial: false }),
): Prompt {
  // Pieces first, then one pass into preallocated arrays (a 32k-token prompt is re-assembled on every question).
  interface Piece {
    readonly ids: readonly number[];
    readonly doc: number;
    readonly enc?: Encoding;
  }
  const pieces: Piece[] = [];
  const plain = (text: string, special: boolean): void => void pieces.push({ ids: tok.encode(text, { allowSpecial: special }), doc: -1 });
  plain(frame.prefix, true);
  docs.forEach((d, i) => {
    plain(docHeader(d.path), false);
    const enc = encodeDoc(d.text);
    pieces.push({ ids: enc.ids, doc: i, enc });
    plain(DOC_FOOTER, false);
  });
  const nContext = pieces.length;
  plain(QUESTION_PREFIX + question, false);
  plain(frame.suffix, true);

  const total = pieces.reduce((n, p) => n + p.ids.length, 0);
  const ids = new Array<number>(total);
  const doc = new Int32Array(total).fill(-1);
  const start = new Int32Array(total).fill(-1);
  const end = new Int32Array(total).fill(-1);
  const spans: DocSpan[] = [];
  let at = 0;
  let contextLength = 0;
  pieces.forEach((p, k) => {
    copyIds(p.ids, ids, at);
    if (p.enc) {
      doc.fill(p.doc, at, at + p.ids.length);
      start.set(p.enc.starts, at);
      end.set(p.enc.ends, at);
      spans.push({ path: docs[p.doc].path, tokenStart: at, tokenEnd: at + p.ids.length });
    }
    at += p.ids.length;
    if (k === nContext - 1) contextLength = at;
  });
  return { ids, origin: { doc, start, end }, docs: spans, contextLength };
}

/** Copies `src` into `dst` from `at`: a loop over a whole document in its own function (prefill.ts foldTokens says why). */
function copyIds(src: readonly number[], dst: number[], at: number): void {
  for (let t = 0; t < src.length; t++) dst[at + t] = src[t];
}
