import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { fixturePath } from '../../tools/make-fixture';
import { main } from '../../engine/cli';
import { UsageError } from '../../engine/cli-common';
import { Rng } from '../../engine/eval/rng';
import { FileCorpus, TextCorpus, cleanText, heldOutFiles, type FillerCorpus } from '../../engine/eval/corpus';
import { NOT_FOUND, TASKS, generateExample, snapToLineStart, type EvalExample, type TaskName } from '../../engine/eval/tasks';
import {
  attributionHit,
  exactMatch,
  lineChance,
  normalizeAnswer,
  rangesOverlap,
  secondReadingCounts,
  summarize,
  type ExampleResult,
} from '../../engine/eval/score';
import { loadPromptMeter, runEval, tokenRange, type EvalRun } from '../../engine/eval/harness';
import { parseEvalArgs } from '../../engine/eval/command';
import { renderMarkdown } from '../../engine/eval/report';
import { assemblePrompt } from '../../engine/prompt';

const MODEL = fixturePath('tiny-llama');
const meter = loadPromptMeter(MODEL);

/** Deterministic prose without any of the tasks' keys or values, for machines without /usr/share/doc. */
function syntheticText(seed: number, nchars: number): string {
  const rng = new Rng(`text-${seed}`);
  const words = [
    'the',
    'package',
    'provides',
    'a',
    'daemon',
    'that',
    'reads',
    'its',
    'configuration',
    'from',
    'files',
    'and',
    'writes',
    'logs',
    'when',
    'started',
    'by',
    'system',
    'users',
    'should',
    'consult',
    'manual',
    'for',
    'details',
    'upstream',
  ];
  let out = '';
  while (out.length < nchars) {
    const n = rng.int(6, 16);
    const sentence = Array.from({ length: n }, () => rng.pick(words)).join(' ');
    out += sentence[0].toUpperCase() + sentence.slice(1) + (rng.next() < 0.3 ? '.\n' : '. ');
    if (rng.next() < 0.05) out += '\n';
  }
  return out;
}

/** A doc root in the held-out layout (pkg/README, pkg/changelog.Debian.gz) filled with synthetic text. */
function writeDocRoot(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-eval-docs-'));
  for (let i = 0; i < 6; i++) {
    const dir = path.join(root, `pkg${i}`);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'README'), syntheticText(i, 6000));
    fs.writeFileSync(path.join(dir, 'changelog.Debian.gz'), zlib.gzipSync(syntheticText(100 + i, 6000)));
    fs.writeFileSync(path.join(dir, 'copyright'), 'training text, never read by eval');
  }
  return root;
}

const realCorpus = heldOutFiles().length > 0 ? FileCorpus.heldOut() : null;
const corpora: [string, FillerCorpus][] = [
  ['synthetic', new TextCorpus(Array.from({ length: 8 }, (_, i) => ({ name: `pkg${i}/README`, text: syntheticText(i, 8000) })))],
  ...(realCorpus ? [['held-out', realCorpus] as [string, FillerCorpus]] : []),
];

const WINDOW = 1024; // the tiny fixture tokenizer spends ~2 characters per token, so W/4 still holds an example
const gen = (corpus: FillerCorpus, task: TaskName, ratio: number, index: number, seed: string | number = 7): EvalExample =>
  generateExample({ seed, task, ratio, window: WINDOW, index, corpus, meter });

const allText = (ex: EvalExample): string => ex.docs.map((d) => d.text).join('\n');
const occurrences = (hay: string, needle: string): number => hay.split(needle).length - 1;

test('Rng is deterministic per seed and uniform enough', () => {
  const a = new Rng('s');
  const b = new Rng('s');
  const c = new Rng('t');
  const xs = Array.from({ length: 1000 }, () => a.next());
  assert.deepEqual(
    xs,
    Array.from({ length: 1000 }, () => b.next()),
  );
  assert.notDeepEqual(
    xs.slice(0, 10),
    Array.from({ length: 10 }, () => c.next()),
  );
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
  const r = new Rng(1);
  for (let i = 0; i < 200; i++) {
    const v = r.int(3, 5);
    assert.ok(v >= 3 && v <= 5 && Number.isInteger(v));
  }
});

test('held-out corpus: only README* and changelog.Debian.gz, gunzipped and cleaned', () => {
  const root = writeDocRoot();
  try {
    const files = heldOutFiles(root);
    assert.equal(files.length, 12);
    assert.ok(
      files.every((f) => /\/README$|\/changelog\.Debian\.gz$/.test(f)),
      files.join('\n'),
    );
    const c = FileCorpus.heldOut(root);
    const gz = files.findIndex((f) => f.endsWith('.gz'));
    assert.equal(c.name(gz), 'pkg0/changelog.Debian');
    assert.equal(c.text(gz), cleanText(syntheticText(100, 6000)));
    assert.equal(c.fingerprint, FileCorpus.heldOut(root).fingerprint);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  for (const f of heldOutFiles()) assert.doesNotMatch(f, /copyright|common-licenses|\/man\//);
  assert.equal(cleanText('a\r\nb\t c  \n\n\n\nd\u0007'), 'a\nb     c\n\nd');
});

test('snapToLineStart picks the nearest line start', () => {
  const t = 'abc\ndefgh\nij';
  assert.equal(snapToLineStart(t, 0), 0);
  assert.equal(snapToLineStart(t, 1), 0);
  assert.equal(snapToLineStart(t, 3), 4);
  assert.equal(snapToLineStart(t, 5), 4);
  assert.equal(snapToLineStart(t, 8), 10);
  assert.equal(snapToLineStart(t, 99), t.length);
});

for (const [name, corpus] of corpora) {
  test(`generators (${name} text) are deterministic for a seed and independent of other examples`, () => {
    for (const task of TASKS) {
      const a = gen(corpus, task, 0.5, 3);
      const b = gen(corpus, task, 0.5, 3);
      assert.deepEqual(a, b, task);
      assert.notDeepEqual(a.docs, gen(corpus, task, 0.5, 4).docs, task);
      assert.notDeepEqual(a.docs, gen(corpus, task, 0.5, 3, 8).docs, task);
    }
  });

  test(`needles (${name} text) sit at the recorded span, once, and prompt length is within 10% of the target`, () => {
    const depths: number[] = [];
    for (const ratio of [0.25, 0.5, 1, 4]) {
      for (const task of TASKS) {
        for (let i = 0; i < 3; i++) {
          const ex = gen(corpus, task, ratio, i);
          const target = Math.round(ratio * WINDOW);
          assert.equal(ex.targetTokens, target);
          const tokens = meter.count(ex.docs, ex.question);
          assert.equal(tokens, ex.promptTokens);
          assert.ok(Math.abs(tokens - target) <= 0.1 * target, `${ex.id}: ${tokens} tokens for target ${target}`);
          if (task === 'notfound') continue;
          const n = ex.needle!;
          assert.equal(ex.docs[n.doc].text.slice(n.start, n.end), n.text, ex.id);
          const a = ex.answerSpan!;
          assert.equal(a.doc, n.doc);
          assert.ok(a.start >= n.start && a.end <= n.end, ex.id);
          assert.equal(ex.docs[a.doc].text.slice(a.start, a.end), ex.answer, ex.id);
          // The answer is stated exactly once, so a correct answer cannot come from anywhere else.
          assert.equal(occurrences(allText(ex), ex.answer), 1, `${ex.id}: answer ${ex.answer}`);
          // Needle on its own line(s): attribution passages are whole lines.
          const t = ex.docs[n.doc].text;
          const lineStart = t.lastIndexOf('\n', n.start - 1) + 1;
          assert.ok(lineStart === 0 || t[lineStart - 1] === '\n');
          depths.push(ex.depth!);
        }
      }
    }
    assert.ok(depths.every((d) => d >= 0 && d < 1));
    assert.ok(Math.min(...depths) < 0.2 && Math.max(...depths) > 0.8, `depths not spread: ${depths}`);
  });

  test(`notfound (${name} text): the asked key appears nowhere and the answer is "${NOT_FOUND}"`, () => {
    for (let i = 0; i < 12; i++) {
      const ex = gen(corpus, 'notfound', 1, i);
      assert.equal(ex.answer, NOT_FOUND);
      assert.equal(ex.needle, null);
      assert.equal(ex.depth, null);
      assert.ok(ex.absentKey && ex.question.includes(ex.absentKey), ex.id);
      assert.ok(!allText(ex).toLowerCase().includes(ex.absentKey.toLowerCase()), `${ex.id}: ${ex.absentKey} present`);
      assert.ok(ex.distractors >= 1, ex.id);
    }
  });
}

test('multikey and lookup carry distractors with the same template and distinct values', () => {
  const corpus = corpora[0][1];
  for (let i = 0; i < 6; i++) {
    const mk = gen(corpus, 'multikey', 1, i);
    assert.ok(mk.distractors >= 1);
    assert.ok(occurrences(allText(mk), 'special magic number') >= 2, mk.id);
    const lk = gen(corpus, 'lookup', 1, i);
    assert.ok(lk.distractors >= 1);
    assert.match(lk.question, /^What is the .+ of the .+\?/);
  }
});

test("eval templates are not the training generator's", () => {
  const data = path.join(__dirname, '../../../engine/train/data.py');
  if (!fs.existsSync(data)) return;
  const src = fs.readFileSync(data, 'utf8');
  for (const phrase of [
    'special magic number',
    'According to the registry',
    'Records show',
    'lists its',
    'Remember this number',
    'Passkey for this session',
    'Which special magic',
    'Tell me the passkey',
    'What passkey do',
  ]) {
    assert.ok(!src.includes(phrase), `training data generator uses "${phrase}"`);
  }
});

test('exact match normalises whitespace only', () => {
  assert.equal(normalizeAnswer('  4821 \n 77\t'), '4821 77');
  assert.ok(exactMatch(' 4821\n', '4821'));
  assert.ok(exactMatch('not  found', 'not found'));
  assert.ok(exactMatch('Agnes\nBraewick', 'Agnes Braewick'));
  assert.ok(!exactMatch('4821.', '4821'));
  assert.ok(!exactMatch('Not found', 'not found'));
  assert.ok(!exactMatch('48 21', '4821'));
  assert.ok(!exactMatch('', '4821'));
});

test('attribution hit: top-1 passage in the right document overlapping the needle', () => {
  assert.ok(rangesOverlap({ start: 0, end: 10 }, { start: 9, end: 20 }));
  assert.ok(rangesOverlap({ start: 5, end: 6 }, { start: 0, end: 100 }));
  assert.ok(!rangesOverlap({ start: 0, end: 10 }, { start: 10, end: 20 }), 'half-open: touching is not overlapping');
  assert.ok(!rangesOverlap({ start: 3, end: 3 }, { start: 0, end: 10 }), 'empty range');
  const needle = { doc: 1, start: 100, end: 150 };
  assert.equal(attributionHit([{ doc: 1, start: 80, end: 120 }], needle), true);
  assert.equal(attributionHit([{ doc: 0, start: 80, end: 120 }], needle), false, 'wrong document');
  assert.equal(
    attributionHit(
      [
        { doc: 1, start: 0, end: 100 },
        { doc: 1, start: 100, end: 150 },
      ],
      needle,
    ),
    false,
    'only top-1 counts',
  );
  assert.equal(attributionHit([], needle), false);
  assert.equal(attributionHit([{ doc: 1, start: 80, end: 120 }], null), null, 'notfound: n/a');
});

test('tokenRange maps a document span to prompt positions', () => {
  const docs = [
    { path: 'a', text: 'hello world\n' },
    { path: 'b', text: 'one two three\nfour' },
  ];
  const p = assemblePrompt(meter.tokenizer, { prefix: '', suffix: '\nAnswer: ' }, docs, 'q?');
  const r = tokenRange(p.origin, { doc: 1, start: 4, end: 7 })!;
  for (let i = r.start; i < r.end; i++) assert.equal(p.origin.doc[i], 1);
  assert.ok(p.origin.start[r.start] <= 4 && p.origin.end[r.end - 1] >= 7);
  assert.equal(tokenRange(p.origin, { doc: 2, start: 0, end: 1 }), null);
});

test('summarize aggregates per (mode, task, length)', () => {
  const base: ExampleResult = {
    id: 'x',
    task: 'niah',
    ratio: 1,
    mode: 'off',
    targetTokens: 100,
    promptTokens: 100,
    depth: 0.5,
    gold: '1',
    prediction: '1',
    correct: true,
    hit: true,
    hitChance: 0.1,
    top1: null,
    prefillMs: 10,
    firstTokenMs: 11,
    decodeMs: 20,
    generatedTokens: 4,
    reusedTokens: 0,
    needleDistance: 50,
    retrievedBlocks: 0,
    retrievedNeedle: null,
  };
  const cells = summarize(
    [
      base,
      { ...base, correct: false, hit: false, prefillMs: 30, decodeMs: 0, generatedTokens: 0, needleDistance: 900 },
      { ...base, mode: 'on', needleDistance: 900, retrievedNeedle: true },
      { ...base, task: 'notfound', hit: null, hitChance: null, needleDistance: null },
    ],
    512,
  );
  const off = cells.find((c) => c.mode === 'off' && c.task === 'niah')!;
  assert.equal(off.n, 2);
  assert.equal(off.correct, 1);
  assert.equal(off.accuracy, 0.5);
  assert.equal(off.hitRate, 0.5);
  assert.equal(off.hitChance, 0.1);
  assert.equal(off.meanPrefillMs, 20);
  assert.equal(off.msPerToken, 5);
  assert.equal(off.beyondWindow, 1);
  assert.equal(off.beyondWindowAccuracy, 0);
  assert.equal(off.needleRecall, null);
  assert.equal(cells.find((c) => c.mode === 'on')!.needleRecall, 1);
  assert.equal(cells.find((c) => c.task === 'notfound')!.hitRate, null);
  assert.equal(cells.find((c) => c.task === 'notfound')!.hitChance, null);
});

test('second reading counts: replaced answers, and which it turned right or wrong', () => {
  const read = (windowAnswer: string, memoryAnswer: string, memoryWins: boolean) => [
    { context: 'window' as const, answer: windowAnswer, meanLogProb: -1, chosen: !memoryWins },
    { context: 'memory' as const, answer: memoryAnswer, meanLogProb: -0.5, chosen: memoryWins },
  ];
  const r = (gold: string, readings: ReturnType<typeof read> | null) => {
    const prediction = readings ? readings.find((x) => x.chosen)!.answer : gold;
    return { gold, prediction, correct: prediction === gold, readings };
  };
  const counts = secondReadingCounts([
    r('7', read('3.8.6-1', '7', true)), // turned right
    r('7', read('7', '8', true)), // turned wrong
    r('7', read('5', '6', true)), // replaced, wrong both ways
    r('7', read('7', 'not found', false)), // kept
    r('7', null), // read once
    r('7', read('not found', '7', false).slice(0, 1)), // the second reading could not change it: not read twice
  ] as unknown as ExampleResult[]);
  assert.deepEqual(counts, { read: 4, replaced: 3, gained: 1, lost: 1 });
  assert.equal(secondReadingCounts([r('7', null)] as unknown as ExampleResult[]), null);
});

test('chance level of an attribution hit: needle lines over all lines', () => {
  const docs = [{ text: 'a\nb\nc' }, { text: 'x\nNEEDLE\ny\nz' }];
  assert.equal(lineChance(docs, { doc: 1, start: 2, end: 8 }), 1 / 7);
  assert.equal(lineChance(docs, { doc: 1, start: 0, end: 8 }), 2 / 7);
  assert.equal(lineChance(docs, null), null);
});

test('eval arguments: defaults, lists, and usage errors', () => {
  const d = parseEvalArgs([]);
  assert.deepEqual(d.tasks, [...TASKS]);
  assert.deepEqual(d.ratios, [0.25, 0.5, 1, 4, 16, 64]);
  assert.deepEqual(d.modes, ['off', 'on']);
  assert.equal(d.n, undefined);
  assert.equal(d.out, 'eval-results.json');
  assert.equal(d.md, 'EVALUATION.md');
  const a = parseEvalArgs(['--tasks', 'niah,passkey', '--lengths', '1,0.25,0.5', '--n', '3', '--memory', 'on', '--seed', 'abc']);
  assert.deepEqual(a.tasks, ['niah', 'passkey']);
  assert.deepEqual(a.ratios, [0.25, 0.5, 1]);
  assert.equal(a.n, 3);
  assert.deepEqual(a.modes, ['on']);
  assert.equal(a.seed, 'abc');
  assert.throws(() => parseEvalArgs(['--tasks', 'haystack']), /unknown task "haystack"/);
  assert.throws(() => parseEvalArgs(['--lengths', '1,x']), /--lengths/);
  assert.throws(() => parseEvalArgs(['--memory', 'maybe']), /--memory/);
  assert.equal(d.quote, undefined, "quoting follows the model's config unless asked");
  assert.equal(parseEvalArgs(['--quote', 'off']).quote, false);
  assert.equal(parseEvalArgs(['--quote', 'on']).quote, true);
  assert.throws(() => parseEvalArgs(['--quote', 'yes']), /--quote must be on or off/);
  assert.throws(() => parseEvalArgs(['--n', '0']), /--n/);
  assert.throws(
    () => parseEvalArgs(['--bogus']),
    (e: unknown) => e instanceof UsageError && /bogus/.test(e.message),
  );
  assert.throws(() => parseEvalArgs(['--lexical-weight', 'lots']), /--lexical-weight must be a number >= 0/);
  assert.equal(parseEvalArgs(['--lexical-weight', '0.5']).lexicalWeight, 0.5);
  assert.equal(d.secondReading, undefined, "the engine's default unless asked");
  assert.equal(parseEvalArgs(['--second-reading', 'off']).secondReading, false);
  assert.throws(() => parseEvalArgs(['--second-reading', 'no']), /--second-reading must be on or off/);
});

function checkReport(run: EvalRun, tasks: readonly string[], ratios: readonly number[], modes: readonly string[], n: number): void {
  assert.equal(run.version, 1);
  assert.equal(run.examples.length, tasks.length * ratios.length * modes.length * n);
  assert.equal(run.cells.length, tasks.length * ratios.length * modes.length);
  for (const c of run.cells) {
    assert.equal(c.n, n);
    assert.ok(c.accuracy >= 0 && c.accuracy <= 1);
    assert.ok(c.meanPrefillMs > 0 && c.meanPromptTokens > 0);
    if (c.task === 'notfound') assert.equal(c.hitRate, null);
    else assert.ok(c.hitRate !== null && c.hitRate >= 0 && c.hitRate <= 1);
  }
  for (const e of run.examples) {
    assert.equal(e.reusedTokens, 0, "no example may reuse another one's cache");
    assert.equal(e.correct, exactMatch(e.prediction, e.gold));
    const g = run.generated.find((x) => x.id === e.id)!;
    assert.equal(e.promptTokens, g.promptTokens, 'the engine sees exactly the measured prompt');
  }
  const md = renderMarkdown(run);
  for (const mode of modes) assert.match(md, new RegExp(`## block memory ${mode}`));
  for (const t of tasks) assert.match(md, new RegExp(`^\\| ${t} \\|`, 'm'));
  assert.match(md, /Exact-match accuracy/);
  assert.match(md, /Attribution hit-rate/);
  assert.match(md, /seed: `/);
  assert.match(md, /machine: /);
  assert.match(md, /total time: /);
}

test('end to end: runEval on the tiny fixture model, both memory modes', async () => {
  const tasks = [...TASKS];
  const ratios = [0.25, 1.5];
  const run = await runEval({
    modelDir: MODEL,
    tasks,
    ratios,
    n: () => 1,
    modes: ['off', 'on'],
    seed: 3,
    topK: 2,
    window: WINDOW,
    maxNewTokens: 6,
    corpus: corpora[0][1],
  });
  assert.equal(run.model.window, WINDOW);
  checkReport(run, tasks, ratios, ['off', 'on'], 1);
  // With depth uniform at 1.5W, some needles may fall beyond the window; they are counted consistently.
  for (const c of run.cells) assert.ok(c.beyondWindow <= c.n);
});

test('attend eval writes EVALUATION.md and the JSON results', async () => {
  const root = writeDocRoot();
  try {
    let stdout = '';
    let stderr = '';
    const code = await main(
      [
        'eval',
        '--model',
        MODEL,
        '--window',
        String(WINDOW),
        '--tasks',
        'niah,notfound',
        '--lengths',
        '0.5',
        '--n',
        '2',
        '--memory',
        'off',
        '--docs',
        root,
        '--out',
        'r.json',
        '--md',
        'E.md',
        '--max-new-tokens',
        '4',
      ],
      { io: { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), cwd: root }, packageRoot: null },
    );
    assert.equal(code, 0, stderr);
    const run = JSON.parse(fs.readFileSync(path.join(root, 'r.json'), 'utf8')) as EvalRun;
    checkReport(run, ['niah', 'notfound'], [0.5], ['off'], 2);
    assert.equal(fs.readFileSync(path.join(root, 'E.md'), 'utf8'), renderMarkdown(run));
    assert.match(stderr, /\[memory off 4\/4\]/);
    assert.match(stdout, /wrote .*E\.md/);
    const bad = await main(['eval', '--memory', 'sometimes'], {
      io: { stdout: () => {}, stderr: (s) => (stderr = s), cwd: root },
      packageRoot: null,
    });
    assert.equal(bad, 2);
    assert.match(stderr, /--memory must be on, off or both/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
