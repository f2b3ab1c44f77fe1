// Reliability: questions. Empty and over-long questions get an error that says so (through the real worker process);
// a question that fills the token budget by itself is named as the reason nothing was sent, never a silent cut; text
// that looks like special tokens is encoded as plain text, in questions and in documents.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { EngineClient, EngineRequestError } from '../../extension/engineClient';
import { MAX_QUESTION_CHARS } from '../../engine/protocol';
import { loadTokenizer } from '../../engine/tokenizer';
import { loadChatTemplate, renderChat } from '../../engine/chat';
import { assemblePrompt, frameFromTemplate, QUESTION_PREFIX } from '../../engine/prompt';
import { computeMeter, nothingToSend } from '../../extension/meter';
import { fixturePath } from '../../tools/make-fixture';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const WORKER = path.join(ROOT, 'out', 'engine', 'worker.js');
const MODEL = fixturePath('tiny-llama');
const DOC = { path: 'a.txt', text: 'The keeper counted ships.\nStorms came in autumn.\n' };

let client: EngineClient;
before(() => {
  client = new EngineClient({ workerPath: WORKER, execPath: process.execPath, log: () => undefined });
  client.setModel({ modelDir: MODEL, window: null, sinks: null, weights: false });
});
after(() => client.dispose());

const badRequest = (problem: RegExp) => (e: unknown) =>
  e instanceof EngineRequestError && e.data.kind === 'bad-request' && problem.test(e.data.problem);

test('an empty or blank question is refused by the worker as "the question is empty"; the next ask works', async () => {
  for (const question of ['', '   \n\t']) {
    await assert.rejects(client.ask({ askId: 'e1', docs: [DOC], question, maxNewTokens: 2 }), badRequest(/^the question is empty$/));
  }
  const ok = await client.ask({ askId: 'e2', docs: [DOC], question: 'What came?', maxNewTokens: 2 });
  assert.equal(ok.askId, 'e2');
});

test('a question over the length limit: counting and asking both say how long it is and what the limit is', async () => {
  const question = 'why '.repeat(MAX_QUESTION_CHARS / 4 + 1);
  const limit = /the question is 100,004 characters long; the limit is 100,000/;
  await assert.rejects(client.countTokens({ docs: [DOC], question }), badRequest(limit));
  await assert.rejects(client.ask({ askId: 'l1', docs: [DOC], question, maxNewTokens: 2 }), badRequest(limit));
  const r = await client.countTokens({ docs: [DOC], question: 'short?' });
  assert.equal(r.perFile.length, 1);
});

test('a question that fills the budget by itself: every file is named as left out and the reason is the question', async () => {
  const counts = await client.countTokens({ docs: [DOC], question: 'word '.repeat(2000) });
  const meter = computeMeter({
    files: [{ path: DOC.path, tokens: counts.perFile[0].tokens, overhead: counts.perFile[0].overhead, key: 'k' }],
    skipped: [],
    framePrefixTokens: counts.framePrefixTokens,
    frameSuffixTokens: counts.frameSuffixTokens,
    questionTokens: counts.questionTokens,
    answerReserve: 256,
    budget: 1024,
    window: null,
    sinks: 0,
  });
  assert.deepEqual(meter.includedPaths, []);
  assert.deepEqual(
    meter.leftOut.map((l) => l.path),
    ['a.txt'],
  );
  assert.match(meter.leftOut[0].reason, /over the token budget/);
  const why = nothingToSend(meter, 1) ?? '';
  assert.match(why, new RegExp(`^the question \\(${counts.questionTokens.toLocaleString('en-US')} tokens\\).*token budget of 1,024`));
  assert.match(why, /shorten the question or raise attend\.contextBudget/);
  // A small question with a file too big still blames the file; no file at all says so.
  assert.match(nothingToSend({ ...meter, questionTokens: 1, frameTokens: 0 }, 1) ?? '', /no file fits the token budget/);
  assert.equal(nothingToSend(meter, 0), 'no readable text files in this scope');
});

test('a long question inside the limits is sent whole: the prompt decodes back to every character of it', () => {
  const tok = loadTokenizer(MODEL);
  const question = Array.from({ length: 3000 }, (_, i) => `clause ${i};`).join(' ');
  const prompt = assemblePrompt(tok, frameFromTemplate(null), [DOC], question);
  const questionIds = prompt.ids.slice(prompt.contextLength);
  assert.ok(tok.decode(questionIds).startsWith(QUESTION_PREFIX + question));
});

test('special-token text in a question or a document is plain text, never the special token (fixture tokenizer)', () => {
  const tok = loadTokenizer(MODEL);
  const specials = [...tok.specialTokens.entries()];
  assert.ok(
    specials.some(([t]) => t === '<|endoftext|>'),
    'the fixture has <|endoftext|> as a special token',
  );
  const specialIds = new Set(specials.map(([, id]) => id));
  const hostile = specials.map(([t]) => t).join(' ') + ' <|endoftext|><|end|>';
  const template = loadChatTemplate(MODEL);
  const frame = frameFromTemplate(
    template ? (c) => renderChat(template, [{ role: 'user', content: c }], { addGenerationPrompt: true }) : null,
  );
  const prompt = assemblePrompt(tok, frame, [{ path: 'evil.txt', text: `before ${hostile} after` }], hostile);
  const prefixLen = tok.encode(frame.prefix, { allowSpecial: true }).length;
  const suffixLen = tok.encode(frame.suffix, { allowSpecial: true }).length;
  // The template's own special tokens are the only ones.
  const body = prompt.ids.slice(prefixLen, prompt.ids.length - suffixLen);
  assert.deepEqual(
    body.filter((id) => specialIds.has(id)),
    [],
  );
  assert.ok(tok.decode(body).includes(`before ${hostile} after`));
  assert.ok(tok.decode(body).endsWith(QUESTION_PREFIX + hostile));
  // The question alone, as the worker counts it.
  assert.equal(tok.encode('<|endoftext|>').includes(specialIds.values().next().value as number), false);
  assert.deepEqual(tok.encode('<|endoftext|>', { allowSpecial: true }), [tok.specialTokens.get('<|endoftext|>')]);
});
