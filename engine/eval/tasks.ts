// RULER-style task generators: a haystack of held-out text with statements ("needles") inserted at uniform depth,
// sized to a target number of prompt tokens measured with the model's own tokenizer and prompt layout.
//
// Phrasing is deliberately NOT the training generator's (engine/train/data.py): different nouns, names, attribute
// lists, statement templates and question wordings, so a score measures generalisation, not template recall.
// The answer convention is the training one: the bare value, or exactly "not found" when the asked key is absent.
import type { SourceDoc } from '../prompt';
import type { Tokenizer } from '../types';
import { Rng } from './rng';
import { filler, type FillerCorpus } from './corpus';

export const TASKS = ['passkey', 'niah', 'multikey', 'lookup', 'notfound'] as const;
export type TaskName = (typeof TASKS)[number];
export const NOT_FOUND = 'not found';

export const TASK_DESCRIPTIONS: Record<TaskName, string> = {
  passkey: 'one passkey hidden in the text; ask for it',
  niah: 'single needle: one "special magic number" for a key; ask for it',
  multikey: '2-6 magic numbers for similar keys (shared first word); ask for one',
  lookup: '"what is the X of Y": facts in prose, same-attribute and same-entity distractors',
  notfound: 'magic numbers or facts about other keys only; the asked key is absent -> "not found"',
};

/** [start, end) UTF-16 range in docs[doc].text. */
export interface Span {
  readonly doc: number;
  readonly start: number;
  readonly end: number;
}

export interface EvalExample {
  readonly id: string;
  readonly task: TaskName;
  /** Target length as a multiple of the window W. */
  readonly ratio: number;
  readonly index: number;
  readonly targetTokens: number;
  /** Measured with the model's tokenizer in the engine's prompt layout (template + documents + question). */
  readonly promptTokens: number;
  readonly docs: SourceDoc[];
  readonly question: string;
  readonly answer: string;
  /** The statement that carries the answer (null for notfound). */
  readonly needle: (Span & { readonly text: string }) | null;
  /** The answer string inside the needle. */
  readonly answerSpan: Span | null;
  /** Fraction of the haystack's filler characters before the needle, uniform in [0, 1); null for notfound. */
  readonly depth: number | null;
  /** Statements that are not the needle (other keys, other entities, other attributes). */
  readonly distractors: number;
  /** notfound: the key/entity asked about, which occurs nowhere in the documents. */
  readonly absentKey: string | null;
}

/** How the generator measures length: the engine's own prompt assembly. */
export interface PromptMeter {
  readonly tokenizer: Tokenizer;
  count(docs: readonly SourceDoc[], question: string): number;
}

export interface GenerateOptions {
  readonly seed: string | number;
  readonly task: TaskName;
  readonly ratio: number;
  readonly window: number;
  readonly index: number;
  readonly corpus: FillerCorpus;
  readonly meter: PromptMeter;
}

// ------------------------------------------------------------------ vocabulary (disjoint from engine/train/data.py)
const ADJ = [
  'crooked',
  'silent',
  'hollowed',
  'gilded',
  'restless',
  'patient',
  'woolen',
  'brittle',
  'northern',
  'sunken',
  'painted',
  'humble',
  'clever',
  'rusted',
  'tangled',
  'distant',
  'velvet',
  'sleepy',
  'bitter',
  'golden',
];
const NOUN = [
  'lantern',
  'anvil',
  'heron',
  'teapot',
  'compass',
  'badger',
  'kettle',
  'walrus',
  'spindle',
  'thimble',
  'otter',
  'lighthouse',
  'bellows',
  'mitten',
  'pelican',
  'barrel',
  'quill',
  'chisel',
  'tortoise',
  'saddle',
];
const NAME_SYL = [
  'brae',
  'wick',
  'hol',
  'stan',
  'mere',
  'fen',
  'grim',
  'ald',
  'thorn',
  'rye',
  'dun',
  'ash',
  'wold',
  'ley',
  'bry',
  'cal',
  'ost',
  'vane',
  'hurst',
  'pell',
  'kel',
  'mor',
  'sed',
  'tam',
];
const GIVEN = [
  'Agnes',
  'Bertil',
  'Cosima',
  'Dmitri',
  'Edda',
  'Florin',
  'Gudrun',
  'Hamid',
  'Ilse',
  'Jasper',
  'Katya',
  'Leopold',
  'Magda',
  'Nils',
  'Orla',
  'Piet',
  'Rhea',
  'Stellan',
  'Thea',
  'Ulrich',
  'Vesna',
  'Wilma',
];
const PLACE_KIND = [
  'observatory',
  'ferry line',
  'choir',
  'brewery',
  'lighthouse',
  'orchestra',
  'paper mill',
  'archive',
  'botanical garden',
  'weather station',
];
type ValueKind = 'person' | 'year' | 'callsign' | 'postcode' | 'extension' | 'phrase';
const ATTRIBUTES: readonly (readonly [string, ValueKind])[] = [
  ['chief engineer', 'person'],
  ['founding year', 'year'],
  ['call sign', 'callsign'],
  ['postal code', 'postcode'],
  ['telephone extension', 'extension'],
  ['motto', 'phrase'],
  ['head archivist', 'person'],
  ['opening year', 'year'],
  ['night warden', 'person'],
  ['inventory code', 'callsign'],
];
const MOTTO = [
  'onward through fog',
  'steady hands',
  'listen twice',
  'salt and patience',
  'never idle',
  'light for all',
  'slow is smooth',
  'mend and carry',
];

function titleName(rng: Rng, lo = 2, hi = 3): string {
  const n = rng.int(lo, hi);
  let s = '';
  for (let i = 0; i < n; i++) s += rng.pick(NAME_SYL);
  return s[0].toUpperCase() + s.slice(1);
}

function value(rng: Rng, kind: ValueKind): string {
  switch (kind) {
    case 'person':
      return `${rng.pick(GIVEN)} ${titleName(rng)}`;
    case 'year':
      return String(rng.int(1702, 1989));
    case 'callsign': {
      const L = 'BCDFGHJKLMNPRSTVWXZ';
      return `${rng.pick([...L])}${rng.pick([...L])}-${rng.int(100, 999)}`;
    }
    case 'postcode':
      return String(rng.int(10000, 99999));
    case 'extension':
      return String(rng.int(2000, 8999));
    case 'phrase':
      return rng.pick(MOTTO);
  }
}

const magicNumber = (rng: Rng): string => String(rng.int(1_000_000, 9_999_999));

// ------------------------------------------------------------------ statements
/** A line to insert; `needle` marks the answer-bearing sentence within it, `answer` the answer inside that. */
interface Statement {
  readonly text: string;
  readonly needle?: readonly [number, number];
  readonly answer?: readonly [number, number];
}

/** A statement whose text contains `needle` (whole or part) and `answer` inside it. */
function stmt(text: string, needle: string | null, answer: string | null): Statement {
  if (needle === null) return { text };
  const ns = text.indexOf(needle);
  const as = answer === null ? -1 : text.indexOf(answer, ns);
  if (ns < 0 || (answer !== null && (as < 0 || as + answer.length > ns + needle.length)))
    throw new Error('internal: needle/answer not in statement');
  return { text, needle: [ns, ns + needle.length], ...(answer !== null ? { answer: [as, as + answer.length] as const } : {}) };
}

interface TaskSpec {
  readonly question: string;
  readonly answer: string;
  readonly statements: Statement[];
  /** Must not occur in the filler (values, keys, names), so the needle is the only place the answer is stated. */
  readonly forbidden: string[];
  readonly absentKey: string | null;
}

const PASSKEY_TEMPLATES = [
  (k: string) => `Remember this number, it is the passkey: ${k}.`,
  (k: string) => `(passkey = ${k})`,
  (k: string) => `Whoever finds this line: ${k} is the passkey that opens the archive.`,
  (k: string) => `Passkey for this session -> ${k}`,
  (k: string) => `Do not lose it: passkey ${k}.`,
];
const PASSKEY_QUESTIONS = [
  'Which number is the passkey?',
  'Tell me the passkey that is hidden in the text.',
  'What passkey do the documents give?',
];

const MAGIC_TEMPLATES = [
  (k: string, v: string) => `One of the special magic numbers for ${k} is: ${v}.`,
  (k: string, v: string) => `Hidden fact: the special magic number for ${k} is ${v}.`,
  (k: string, v: string) => `For the record, ${k} has special magic number ${v}.`,
];
const magicQuestion = (rng: Rng, k: string): string =>
  rng.pick([`What is the special magic number for ${k} mentioned in the provided text?`, `Which special magic number belongs to ${k}?`]);

const FACT_TEMPLATES = [
  (e: string, a: string, v: string) => `According to the registry, ${e}'s ${a} happens to be ${v}.`,
  (e: string, a: string, v: string) => `Records show ${v} as the ${a} for ${e}.`,
  (e: string, a: string, v: string) => `${e[0].toUpperCase() + e.slice(1)} lists its ${a} as ${v}.`,
  (e: string, a: string, v: string) => `When asked, staff at ${e} gave ${v} as the ${a}.`,
];
const entity = (rng: Rng): string => `the ${titleName(rng)} ${rng.pick(PLACE_KIND)}`;

/** Distinct values produced by `make`. */
function distinct(n: number, make: () => string): string[] {
  const out = new Set<string>();
  for (let guard = 0; out.size < n; guard++) {
    if (guard > 1000) throw new Error('internal: cannot draw distinct values');
    out.add(make());
  }
  return [...out];
}

function passkeySpec(rng: Rng): TaskSpec {
  const k = rng.next() < 0.8 ? String(rng.int(10_000, 999_999)) : `${rng.int(100, 999)}-${rng.int(100, 999)}`;
  const line = rng.pick(PASSKEY_TEMPLATES)(k);
  return {
    question: rng.pick(PASSKEY_QUESTIONS),
    answer: k,
    statements: [stmt(line, line, k)],
    forbidden: [k, 'passkey'],
    absentKey: null,
  };
}

function niahSpec(rng: Rng): TaskSpec {
  const key = `${rng.pick(ADJ)}-${rng.pick(NOUN)}`;
  const v = magicNumber(rng);
  const line = rng.pick(MAGIC_TEMPLATES)(key, v);
  return {
    question: magicQuestion(rng, key),
    answer: v,
    statements: [stmt(line, line, v)],
    forbidden: [key, v, 'magic number'],
    absentKey: null,
  };
}

function multikeySpec(rng: Rng, maxStatements: number): TaskSpec {
  const n = rng.int(2, Math.max(2, Math.min(6, maxStatements)));
  const adj = rng.pick(ADJ);
  const keys = rng.sample(NOUN, n).map((w) => `${adj}-${w}`);
  const vals = distinct(n, () => magicNumber(rng));
  const tpl = rng.pick(MAGIC_TEMPLATES);
  const ask = rng.int(0, n - 1);
  const statements = keys.map((k, i) => {
    const line = tpl(k, vals[i]);
    return i === ask ? stmt(line, line, vals[i]) : stmt(line, null, null);
  });
  return {
    question: magicQuestion(rng, keys[ask]),
    answer: vals[ask],
    statements,
    forbidden: [...keys, ...vals, 'magic number'],
    absentKey: null,
  };
}

function lookupSpec(rng: Rng, maxStatements: number): TaskSpec {
  // At the shortest lengths the budget may only hold the asked fact itself.
  const nOther = rng.int(maxStatements > 1 ? 1 : 0, Math.max(0, Math.min(3, maxStatements - 1)));
  const ents = distinct(nOther + 1, () => entity(rng));
  const attrs = rng.sample(ATTRIBUTES, maxStatements >= 4 ? rng.int(1, 3) : 1);
  const [attr, kind] = attrs[0];
  const vals = distinct(nOther + 1, () => value(rng, kind));
  const forbidden = [...ents.map((e) => e.slice(4)), ...vals];
  // The asked entity's paragraph: the asked fact plus its other attributes, in shuffled order, on one line.
  const sentences: { text: string; asked: boolean }[] = [{ text: rng.pick(FACT_TEMPLATES)(ents[0], attr, vals[0]), asked: true }];
  for (const [a, k] of attrs.slice(1)) {
    let v = value(rng, k);
    while (vals.includes(v)) v = value(rng, k);
    forbidden.push(v);
    sentences.push({ text: rng.pick(FACT_TEMPLATES)(ents[0], a, v), asked: false });
  }
  rng.shuffle(sentences);
  const para = sentences.map((s) => s.text).join(' ');
  const askedText = sentences.find((s) => s.asked)!.text;
  const statements = [stmt(para, askedText, vals[0])];
  // Same attribute for other entities, each elsewhere in the haystack.
  for (let i = 1; i <= nOther; i++) statements.push(stmt(rng.pick(FACT_TEMPLATES)(ents[i], attr, vals[i]), null, null));
  const question = rng.pick([`What is the ${attr} of ${ents[0]}?`, `What is the ${attr} of ${ents[0]}? Reply with the value only.`]);
  return { question, answer: vals[0], statements, forbidden, absentKey: null };
}

function notFoundSpec(rng: Rng, maxStatements: number): TaskSpec {
  const n = rng.int(1, Math.max(1, Math.min(3, maxStatements)));
  if (rng.next() < 0.5) {
    // Magic numbers for other keys; the asked key shares the first word with them half of the time.
    const adj = rng.pick(ADJ);
    const nouns = rng.sample(NOUN, n + 1);
    const keys = nouns.map((w) => `${adj}-${w}`);
    const absent = rng.next() < 0.5 ? keys[n] : `${rng.pick(ADJ.filter((a) => a !== adj))}-${nouns[n]}`;
    const vals = distinct(n, () => magicNumber(rng));
    const tpl = rng.pick(MAGIC_TEMPLATES);
    const statements = vals.map((v, i) => stmt(tpl(keys[i], v), null, null));
    return {
      question: magicQuestion(rng, absent),
      answer: NOT_FOUND,
      statements,
      forbidden: [...keys, absent, ...vals, 'magic number'],
      absentKey: absent,
    };
  }
  // Facts about other entities; the asked entity never appears.
  const ents = distinct(n + 1, () => entity(rng));
  const [attr, kind] = rng.pick(ATTRIBUTES);
  const vals = distinct(n, () => value(rng, kind));
  const statements = vals.map((v, i) => stmt(rng.pick(FACT_TEMPLATES)(ents[i], attr, v), null, null));
  const absent = ents[n];
  return {
    question: `What is the ${attr} of ${absent}?`,
    answer: NOT_FOUND,
    statements,
    forbidden: [...ents.map((e) => e.slice(4)), ...vals],
    absentKey: absent.slice(4),
  };
}

function taskSpec(task: TaskName, rng: Rng, maxStatements: number): TaskSpec {
  switch (task) {
    case 'passkey':
      return passkeySpec(rng);
    case 'niah':
      return niahSpec(rng);
    case 'multikey':
      return multikeySpec(rng, maxStatements);
    case 'lookup':
      return lookupSpec(rng, maxStatements);
    case 'notfound':
      return notFoundSpec(rng, maxStatements);
  }
}

// ------------------------------------------------------------------ haystack assembly
/** Offset of a line start near `at` (the nearer of the current line's start and the next one's). */
export function snapToLineStart(text: string, at: number): number {
  if (at <= 0) return 0;
  if (at >= text.length) return text.length;
  const prev = text.lastIndexOf('\n', at - 1) + 1;
  const nl = text.indexOf('\n', at);
  const next = nl < 0 ? text.length : nl + 1;
  return at - prev <= next - at ? prev : next;
}

/** Cut `text` after about `tokens` tokens, at a line end (or a space) so no word is split. */
function cutAtTokens(tok: Tokenizer, text: string, tokens: number): string {
  if (tokens <= 0) return '';
  const enc = tok.encodeWithOffsets(text);
  if (enc.ids.length <= tokens) return text;
  const end = enc.ends[tokens - 1];
  // A line end when one is close (the cut stays within ~2% of the budget), else the last space.
  const nl = text.lastIndexOf('\n', end);
  if (nl > 0 && end - nl <= end * 0.02) return text.slice(0, nl).trimEnd();
  const sp = text.lastIndexOf(' ', end);
  return text.slice(0, sp > 0 && end - sp <= Math.max(12, end * 0.02) ? sp : end).trimEnd();
}

function containsAny(hay: string, needles: readonly string[]): boolean {
  const h = hay.toLowerCase();
  return needles.some((n) => h.includes(n.toLowerCase()));
}

interface Placement {
  readonly statement: Statement;
  /** Fraction of all filler characters (across documents, in order) before the statement. */
  readonly depth: number;
}

/** Inserts statements into filler documents at their depths (each on its own line); returns texts and needle spans. */
function insertStatements(
  fillers: readonly string[],
  placements: readonly Placement[],
): { texts: string[]; needle: (Span & { text: string }) | null; answerSpan: Span | null } {
  const total = fillers.reduce((s, f) => s + f.length, 0);
  // (doc, offset) for each placement, from its depth over the concatenated filler.
  const at = placements.map((p, order) => {
    let g = Math.min(total, Math.floor(p.depth * total));
    let doc = 0;
    while (doc < fillers.length - 1 && g > fillers[doc].length) {
      g -= fillers[doc].length;
      doc++;
    }
    return { doc, offset: snapToLineStart(fillers[doc], g), order, p };
  });
  at.sort((a, b) => a.doc - b.doc || a.offset - b.offset || a.order - b.order);
  const texts: string[] = [];
  let needle: (Span & { text: string }) | null = null;
  let answerSpan: Span | null = null;
  for (let d = 0; d < fillers.length; d++) {
    const f = fillers[d];
    let out = '';
    let pos = 0;
    for (const a of at.filter((x) => x.doc === d)) {
      out += f.slice(pos, a.offset);
      pos = a.offset;
      if (out.length > 0 && !out.endsWith('\n')) out += '\n';
      const base = out.length;
      out += a.p.statement.text + '\n';
      const s = a.p.statement;
      if (s.needle) needle = { doc: d, start: base + s.needle[0], end: base + s.needle[1], text: s.text.slice(s.needle[0], s.needle[1]) };
      if (s.answer) answerSpan = { doc: d, start: base + s.answer[0], end: base + s.answer[1] };
    }
    out += f.slice(pos);
    texts.push(out.replace(/\n+$/, ''));
  }
  return { texts, needle, answerSpan };
}

/** Stable example id: independent of which other tasks/lengths/counts are run. */
export function exampleId(seed: string | number, task: TaskName, ratio: number, index: number): string {
  return `${seed}/${task}/${ratio}W/${index}`;
}

/**
 * One example. Deterministic in (seed, task, ratio, index, window, corpus, tokenizer): its own PRNG stream is seeded
 * from the id. Throws when the target is too small to hold template, question and statements.
 */
export function generateExample(o: GenerateOptions): EvalExample {
  const id = exampleId(o.seed, o.task, o.ratio, o.index);
  const rng = new Rng(id);
  const target = Math.round(o.ratio * o.window);
  let maxStatements = target < 200 ? 2 : target < 400 ? 4 : 6;
  const nDocs = target < 400 ? 1 : rng.int(1, 3);

  let lastOverhead = 0;
  for (let attempt = 0; attempt < 20; attempt++) {
    const spec = taskSpec(o.task, rng, maxStatements);
    // Depths: uniform for every statement; the needle's depth is the one reported.
    const placements: Placement[] = spec.statements.map((s) => ({ statement: s, depth: rng.next() }));
    // Filler sources: long enough texts per document; extended when the token budget grows.
    const shares = Array.from({ length: nDocs }, () => 0.6 + 0.8 * rng.next());
    const shareSum = shares.reduce((a, b) => a + b, 0);
    const fill = Array.from({ length: nDocs }, () => ({ name: '', text: '' }));
    const emptyDocs = fill.map((_, i) => ({ path: `doc-${i}`, text: '' }));
    const stmtTokens = spec.statements.reduce((s, st) => s + o.meter.tokenizer.count(st.text + '\n'), 0);
    const overhead = o.meter.count(emptyDocs, spec.question) + stmtTokens;
    if (overhead > target * 0.9) {
      // Fewer distractors first, then other draws (names and values differ in length); fail after 20 draws.
      if (maxStatements > 1) maxStatements--;
      lastOverhead = overhead;
      continue;
    }
    let budget = target - overhead;
    let lo = -1;
    let hi = target + 1;
    let result: { texts: string[]; needle: EvalExample['needle']; answerSpan: Span | null; docs: SourceDoc[]; tokens: number } | null =
      null;
    let clean = true;
    for (let iter = 0; iter < 10; iter++) {
      const perDoc = shares.map((s) => Math.max(0, Math.round((budget * s) / shareSum)));
      const cut: string[] = [];
      for (let d = 0; d < nDocs; d++) {
        // Extend the source until it holds enough tokens (about 3-4 characters per token for English BPE).
        while (o.meter.tokenizer.count(fill[d].text) < perDoc[d]) {
          const more = filler(o.corpus, rng, Math.max(400, (perDoc[d] - o.meter.tokenizer.count(fill[d].text)) * 5));
          if (!fill[d].name) fill[d].name = more.name;
          fill[d].text = fill[d].text ? `${fill[d].text}\n\n${more.text}` : more.text;
        }
        cut.push(cutAtTokens(o.meter.tokenizer, fill[d].text, perDoc[d]));
      }
      if (containsAny(cut.join('\n'), spec.forbidden)) {
        clean = false;
        break;
      }
      const ins = insertStatements(cut, placements);
      const names = uniqueNames(fill.map((f, i) => f.name || `notes-${i + 1}`));
      const docs = ins.texts.map((text, i) => ({ path: names[i], text }));
      const tokens = o.meter.count(docs, spec.question);
      if (!result || Math.abs(tokens - target) < Math.abs(result.tokens - target)) result = { ...ins, docs, tokens };
      if (Math.abs(tokens - target) <= target * 0.03 || budget === 0) break;
      // Secant step, kept inside the bracket seen so far (cuts snap to line/word ends, so f(budget) has steps).
      if (tokens > target) hi = Math.min(hi, budget);
      else lo = Math.max(lo, budget);
      let next = budget + (target - tokens);
      if (next <= lo || next >= hi) next = Math.floor((lo + hi) / 2);
      if (next === budget || next <= lo || next >= hi) break;
      budget = next;
    }
    if (!clean || !result) continue; // the filler happened to mention a key or value: draw new ones
    const needle = result.needle;
    return {
      id,
      task: o.task,
      ratio: o.ratio,
      index: o.index,
      targetTokens: target,
      promptTokens: result.tokens,
      docs: result.docs,
      question: spec.question,
      answer: spec.answer,
      needle,
      answerSpan: result.answerSpan,
      depth: placements.find((p) => p.statement.needle)?.depth ?? null,
      distractors: spec.statements.length - (needle ? 1 : 0),
      absentKey: spec.absentKey,
    };
  }
  if (lastOverhead > 0) {
    throw new Error(`${id}: target ${target} tokens is too small for the template, question and statements (${lastOverhead} tokens)`);
  }
  throw new Error(`${id}: could not build a haystack free of the example's keys and values in 20 attempts`);
}

function uniqueNames(names: string[]): string[] {
  const seen = new Map<string, number>();
  return names.map((n) => {
    const k = (seen.get(n) ?? 0) + 1;
    seen.set(n, k);
    return k === 1 ? n : `${n} (${k})`;
  });
}
