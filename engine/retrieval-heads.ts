// Which attention heads look things up. Block memory ranks far blocks by the attention the question would give them,
// summed over layers and heads; but most heads attend to the sinks, the last few tokens or the template, and their
// share of a far block says nothing about whether it holds the answer. A few heads do the retrieving (the "retrieval
// heads" of Wu et al., 2024). They are found here per model with a short synthetic calibration: a pass key placed
// inside the window, and each head's attention from the last prompt token onto it. Block memory then weighs each head
// by that mass. On the shipped built-in model 7 of its 32 heads (one in layer 2, six in layer 3) get weights of
// 0.68-1.0 and 23 stay under 0.1.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Decoder } from './runtime/decoder';
import { assemblePrompt, type PromptFrame } from './prompt';
import type { Tokenizer } from './types';

/** Neutral filler (the sentences of the classic pass-key test) and three needles at different depths. */
const FILLER = 'The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ';
const NEEDLES: readonly { key: string; depth: number }[] = [
  { key: '68417', depth: 0.25 },
  { key: '30592', depth: 0.5 },
  { key: '92743', depth: 0.8 },
];
const QUESTION = 'What is the pass key?';
const CACHE_FILE = 'retrieval-heads.json';
const CACHE_VERSION = 1;

function needleText(key: string): string {
  return `The pass key is ${key}. Remember it. ${key} is the pass key. `;
}

/**
 * The calibration documents: filler with the needle at its depth, sized so the whole prompt takes about 3/4 of
 * `maxTokens` (the needle must be inside the window). Returns the text and the needle's UTF-16 range.
 */
export function calibrationDocs(tok: Tokenizer, frame: PromptFrame, maxTokens: number): { text: string; start: number; end: number }[] {
  const fillerTokens = tok.encode(FILLER, { allowSpecial: false }).length;
  const overhead = assemblePrompt(tok, frame, [{ path: 'notes.txt', text: needleText('00000') }], QUESTION).ids.length;
  const repeats = Math.max(1, Math.floor((maxTokens * 0.75 - overhead) / fillerTokens));
  return NEEDLES.map(({ key, depth }) => {
    const at = Math.round(repeats * depth);
    const before = FILLER.repeat(at);
    const needle = needleText(key);
    return { text: before + needle + FILLER.repeat(repeats - at), start: before.length, end: before.length + needle.length };
  });
}

/**
 * Per (layer, head), laid out l * nHeads + h: the mean attention mass the last prompt token gives the needle, scaled
 * so the largest is 1. Null when no head attends to the needle at all (block memory then weighs heads equally).
 */
export async function measureRetrievalHeads(
  decoder: Decoder,
  tok: Tokenizer,
  frame: PromptFrame,
  window: number,
): Promise<Float64Array | null> {
  const { nLayers, nHeads } = decoder.cfg;
  const mass = new Float64Array(nLayers * nHeads);
  for (const doc of calibrationDocs(tok, frame, Math.min(window, 1024))) {
    const prompt = assemblePrompt(tok, frame, [{ path: 'notes.txt', text: doc.text }], QUESTION);
    const ids = prompt.ids;
    // Everything but the last token without attention output, then the last token's attention rows only.
    const head = await decoder.step(decoder.emptyState(), ids.slice(0, -1), {});
    const last = await decoder.step(head.state, ids.slice(-1), { attentions: true });
    const att = last.attentions!;
    const nKeys = att.keyPositions.length;
    const onNeedle = Array.from(
      att.keyPositions,
      (p) => prompt.origin.doc[p] === 0 && prompt.origin.start[p] < doc.end && prompt.origin.end[p] > doc.start,
    );
    for (let l = 0; l < nLayers; l++) {
      const rows = att.layers[l]; // (nHeads, 1, nKeys)
      for (let h = 0; h < nHeads; h++) {
        let m = 0;
        for (let k = 0; k < nKeys; k++) if (onNeedle[k]) m += rows[h * nKeys + k];
        mass[l * nHeads + h] += m / NEEDLES.length;
      }
    }
  }
  const max = Math.max(...mass);
  if (!(max > 0)) return null;
  return mass.map((m) => m / max);
}

/**
 * The model's retrieval-head weights, from `dir` when an earlier run stored them (the folder is per model
 * fingerprint), else measured and stored there. A missing or unreadable file is measured again; a failed write only
 * costs the next load a calibration.
 */
export async function retrievalHeads(
  dir: string,
  decoder: Decoder,
  tok: Tokenizer,
  frame: PromptFrame,
  window: number,
): Promise<Float64Array | null> {
  const file = path.join(dir, CACHE_FILE);
  const n = decoder.cfg.nLayers * decoder.cfg.nHeads;
  try {
    const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: unknown; window?: unknown; weights?: unknown };
    const w = saved.weights;
    if (
      saved.version === CACHE_VERSION &&
      saved.window === window &&
      (w === null || (Array.isArray(w) && w.length === n && w.every((x) => typeof x === 'number' && x >= 0 && x <= 1)))
    )
      return w === null ? null : Float64Array.from(w as number[]);
  } catch {
    // absent or unreadable: measure
  }
  const weights = await measureRetrievalHeads(decoder, tok, frame, window);
  sweepTemps(dir, STALE_TEMP_MS);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(tmp, JSON.stringify({ version: CACHE_VERSION, window, weights: weights ? Array.from(weights) : null }));
    fs.renameSync(tmp, file);
  } catch {
    // a read-only cache: measured again next time
    try {
      fs.unlinkSync(tmp);
    } catch {
      /* never written */
    }
  }
  return weights;
}

/** A temp file older than this is a leftover of a process killed while writing (the write itself takes milliseconds). */
const STALE_TEMP_MS = 60 * 60 * 1000;

/** Removes `retrieval-heads.json.<pid>.tmp` leftovers at least `olderThanMs` old. */
function sweepTemps(dir: string, olderThanMs: number): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  const now = Date.now();
  for (const name of names) {
    if (!name.startsWith(`${CACHE_FILE}.`) || !name.endsWith('.tmp')) continue;
    try {
      const file = path.join(dir, name);
      if (now - fs.statSync(file).mtimeMs >= olderThanMs) fs.unlinkSync(file);
    } catch {
      /* gone already */
    }
  }
}

/** Removes the stored weights (Clear Cache); the engine keeps the ones it loaded, and the next load measures again. */
export function forgetRetrievalHeads(dir: string): void {
  try {
    fs.unlinkSync(path.join(dir, CACHE_FILE));
  } catch {
    // not there
  }
  sweepTemps(dir, 0);
}
