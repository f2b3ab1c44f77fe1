// Asking about a file, a selection and the workspace end to end in a real extension host: the engine worker runs the
// configured model (the built-in one, or the generated fixture whose answers are random text: so these tests assert
// structure, streaming and numbers, never the answer's content).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, it } from 'mocha';
import * as vscode from 'vscode';
import type { AskOutcome, AttendApi } from '../../extension/api';
import {
  answered,
  answerPanelOpen,
  askFile,
  askSelection,
  askWorkspace,
  attend,
  attendHover,
  hoversAt,
  modelDir,
  openEditor,
  promptTokens,
  recordEvents,
  showMeter,
  withSetting,
  writeFile,
  wsFile,
} from './helpers';

const QUESTION = 'Who rowed out to save the crew of the Alder?';

describe('ask about the current file', function () {
  this.timeout(120_000);
  let api: AttendApi;
  let extensionPath: string;
  let doc: vscode.TextDocument;
  let first: AskOutcome;
  const rec: { value?: ReturnType<typeof recordEvents> } = {};

  before(async () => {
    const a = await attend();
    api = a.api;
    extensionPath = a.ext.extensionPath;
    rec.value = recordEvents(api);
    doc = (await openEditor(wsFile('lighthouse.md'))).document;
    first = await askFile({ question: QUESTION }); // no uri: the active editor's file
  });
  after(() => rec.value?.dispose());

  it('answers with the question taken from the command argument', () => {
    const o = answered(first);
    assert.equal(o.question, QUESTION);
    assert.equal(o.scope, 'lighthouse.md');
    assert.ok(o.summary.generatedTokens > 0, 'some tokens were generated');
    assert.ok(['eos', 'stop', 'length'].includes(o.summary.stopReason), o.summary.stopReason);
    const max = vscode.workspace.getConfiguration('attend').get<number>('maxNewTokens', 256);
    assert.ok(o.summary.generatedTokens <= max, `${o.summary.generatedTokens} <= maxNewTokens ${max}`);
  });

  it('opens the answer panel', () => {
    assert.ok(answerPanelOpen(), 'a webview tab of type attend.answer is open');
  });

  it('streams the answer token by token, in order, then ends', () => {
    const o = answered(first);
    const events = rec.value!.of(o.askId);
    assert.equal(events[0]?.kind, 'start');
    assert.deepEqual(events.at(-1), { kind: 'end', askId: o.askId, status: 'answered' });
    const tokens = events.flatMap((e) => (e.kind === 'token' ? [e] : []));
    assert.equal(tokens.length, o.summary.generatedTokens, 'one token event per generated token');
    assert.deepEqual(
      tokens.map((t) => t.index),
      tokens.map((_, i) => i),
    );
    if (o.summary.stopReason !== 'stop') assert.equal(tokens.map((t) => t.text).join(''), o.answer);
    // Every token arrives before the ask ends: streamed, not delivered at the end.
    const end = events.findIndex((e) => e.kind === 'end');
    assert.ok(events.findIndex((e) => e.kind === 'token') < end);
  });

  it('reports prefill progress up to the whole prompt', () => {
    const o = answered(first);
    const prefill = rec.value!.of(o.askId).flatMap((e) => (e.kind === 'progress' && e.phase === 'prefill' ? [e] : []));
    assert.ok(prefill.length > 0, 'prefill progress was reported');
    const last = prefill.at(-1)!;
    assert.equal(last.total, o.summary.promptTokens);
    assert.equal(last.done, last.total);
  });

  it("meter numbers equal the engine's counts", () => {
    const o = answered(first);
    const m = o.meter;
    const s = o.summary;
    // What the meter said would be sent is what the engine prefilled.
    assert.equal(m.used - m.answerReserve, s.promptTokens, 'meter prompt tokens = engine prompt tokens');
    assert.equal(s.reusedTokens + s.computedTokens, s.promptTokens);
    assert.equal(m.answerReserve, vscode.workspace.getConfiguration('attend').get('maxNewTokens'));
    // ...and what the engine's library assembles on its own.
    const independent = promptTokens(modelDir(extensionPath), [{ path: 'lighthouse.md', text: doc.getText() }], QUESTION);
    assert.equal(s.promptTokens, independent, 'prompt assembled with engine/prompt + the model tokenizer');
    assert.equal(m.files.length, 1);
    assert.equal(m.files[0].path, 'lighthouse.md');
    assert.equal(m.files[0].included, true);
    assert.deepEqual(m.leftOut, []);
    const parts = m.frameTokens + m.files[0].tokens + m.questionTokens + m.answerReserve;
    assert.equal(m.used, parts, 'used = template + file + question + reserve');
  });

  it('the status-bar meter (Show Context Meter) counts the same file without a question', async () => {
    const o = answered(first);
    await openEditor(doc.uri);
    const m = await showMeter();
    assert.ok(m, 'showMeter returned the meter of the active editor');
    assert.equal(m.files[0].path, 'lighthouse.md');
    assert.equal(m.files[0].tokens, o.meter.files[0].tokens);
    assert.equal(m.frameTokens, o.meter.frameTokens);
    const emptyQuestion = promptTokens(modelDir(extensionPath), [{ path: 'lighthouse.md', text: doc.getText() }], '');
    assert.equal(m.used - m.answerReserve, emptyQuestion);
  });

  it('ranks passages inside the file and highlights them', () => {
    const o = answered(first);
    assert.ok(o.passages.length > 0, 'at least one passage');
    assert.ok(o.highlights.length > 0, 'at least one highlight');
    for (const p of o.passages) {
      assert.equal(p.path, 'lighthouse.md');
      assert.ok(p.start < p.end && p.end <= doc.getText().length, `passage [${p.start}, ${p.end})`);
      assert.ok(p.score > 0 && p.score <= 1, `score ${p.score}`);
    }
    const scores = o.passages.map((p) => p.score);
    assert.deepEqual(
      scores,
      [...scores].sort((a, b) => b - a),
      'ranked strongest first',
    );
    for (const h of o.highlights) {
      assert.equal(h.uri, doc.uri.toString());
      assert.ok(h.startLine <= h.endLine && h.endLine < doc.lineCount, `lines ${h.startLine}-${h.endLine}`);
      assert.ok(h.level >= 0 && h.level <= 3);
    }
    assert.equal(o.highlights[0].level, 3, 'the top passage is drawn strongest');
  });

  it('hovers over a highlighted passage show its rank, score, lines and a link to the panel', async () => {
    const o = answered(first);
    const h = o.highlights[0];
    const passage = o.passages[h.index];
    const text = attendHover(await hoversAt(doc.uri, new vscode.Position(h.startLine, 0)));
    assert.ok(text, `an Attend hover on line ${h.startLine + 1}`);
    assert.match(text, new RegExp(`passage ${h.index + 1} · score ${(passage.score * 100).toFixed(1)}%`));
    assert.ok(text.includes(`${h.startLine + 1}–${h.endLine + 1}`), `lines ${h.startLine + 1}–${h.endLine + 1} in ${text}`);
    assert.ok(text.includes('command:attend.showPanel'), 'links to the answer panel');
  });

  it('no Attend hover outside the highlighted passages', async () => {
    const o = answered(first);
    const lit = new Set(o.highlights.flatMap((h) => Array.from({ length: h.endLine - h.startLine + 1 }, (_, i) => h.startLine + i)));
    const dark = Array.from({ length: doc.lineCount }, (_, i) => i).find((l) => !lit.has(l) && doc.lineAt(l).text.length > 0);
    if (dark === undefined) return; // every non-empty line is attributed
    assert.equal(attendHover(await hoversAt(doc.uri, new vscode.Position(dark, 0))), undefined);
  });

  it('a second question about the same file reuses the cached prefix', async () => {
    const o = answered(await askFile({ question: 'When was the light automated?', uri: doc.uri }));
    assert.ok(o.meter.cachedTokens > 0, 'the meter expects a cached prefix');
    assert.ok(o.summary.reusedTokens > 0, `the engine reused ${o.summary.reusedTokens} tokens`);
    assert.ok(o.summary.reusedTokens <= o.meter.cachedTokens + 1, 'no more reuse than the shared context');
    assert.equal(o.summary.reusedTokens + o.summary.computedTokens, o.summary.promptTokens);
  });

  it('Clear Highlights removes the hovers', async () => {
    const o = answered(first);
    const h = o.highlights[0];
    await vscode.commands.executeCommand('attend.clearHighlights');
    assert.equal(attendHover(await hoversAt(doc.uri, new vscode.Position(h.startLine, 0))), undefined);
  });

  it('Ask Again with a question re-asks about the latest scope', async () => {
    const o = answered((await vscode.commands.executeCommand<AskOutcome>('attend.askAgain', 'Where are the ledgers kept?')) as AskOutcome);
    assert.equal(o.question, 'Where are the ledgers kept?');
    assert.equal(o.scope, 'lighthouse.md');
  });
});

describe('ask about a selection', function () {
  this.timeout(120_000);

  it('sends only the selected lines and highlights inside them', async () => {
    const uri = wsFile('lighthouse.md');
    const doc = await vscode.workspace.openTextDocument(uri);
    const start = doc.offsetAt(new vscode.Position(6, 0));
    const end = doc.offsetAt(doc.lineAt(8).range.end);
    const o = answered(await askSelection({ question: QUESTION, uri, selection: { start, end } }));
    assert.equal(o.meter.files.length, 1);
    assert.equal(o.meter.files[0].path, 'lighthouse.md (lines 7-9)');
    for (const h of o.highlights) assert.ok(h.startLine >= 6 && h.endLine <= 8, `highlight ${h.startLine}-${h.endLine} inside lines 6-8`);
    const { ext } = await attend();
    const independent = promptTokens(
      modelDir(ext.extensionPath),
      [{ path: 'lighthouse.md (lines 7-9)', text: doc.getText().slice(start, end) }],
      QUESTION,
    );
    assert.equal(o.summary.promptTokens, independent);
  });

  it('without a selection it says so and asks nothing', async () => {
    await openEditor(wsFile('lighthouse.md'));
    const r = await vscode.commands.executeCommand<AskOutcome | undefined>('attend.askAboutSelection', { question: QUESTION });
    assert.equal(r, undefined);
  });
});

const WORKSPACE_FILES = ['.gitignore', 'README.md', 'harbour/log.txt', 'lighthouse.md'];
const JAN = new Date('2026-01-01T00:00:00Z');

describe('ask about the workspace', function () {
  this.timeout(120_000);

  before(async () => {
    // Git-ignored and binary files must be left out (the fixture's .gitignore names drafts/).
    await writeFile('drafts/unfinished.txt', 'Not for the model.\n');
    await writeFile('harbour/chart.bin', new Uint8Array([0, 1, 2, 0, 255, 0, 7, 0]));
    // One modification time for every file: prompt order is then path order.
    for (const f of WORKSPACE_FILES) fs.utimesSync(wsFile(f).fsPath, JAN, JAN);
  });

  it('sends the workspace files, leaves out ignored and binary ones, and says so', async () => {
    const o = answered(await askWorkspace(QUESTION));
    const sent = o.meter.files.filter((f) => f.included).map((f) => f.path);
    assert.deepEqual(sent, ['.gitignore', 'README.md', 'harbour/log.txt', 'lighthouse.md']);
    assert.ok(!o.meter.files.some((f) => f.path.startsWith('drafts/')), 'drafts/ is git-ignored');
    const binary = o.meter.leftOut.find((l) => l.path === 'harbour/chart.bin');
    assert.ok(binary, `chart.bin is listed as left out: ${JSON.stringify(o.meter.leftOut)}`);
    assert.equal(o.meter.used - o.meter.answerReserve, o.summary.promptTokens);
    assert.match(o.scope, /^workspace .* \(4 files\)$/);
  });

  it('puts the most recently modified file last, so editing it again reuses every other file', async () => {
    const readme = wsFile('README.md').fsPath;
    const original = fs.readFileSync(readme, 'utf8');
    try {
      const feb = new Date('2026-02-01T00:00:00Z');
      fs.utimesSync(readme, feb, feb);
      const order = ['.gitignore', 'harbour/log.txt', 'lighthouse.md', 'README.md'];
      const a = answered(await askWorkspace(QUESTION));
      assert.deepEqual(
        a.meter.files.filter((f) => f.included).map((f) => f.path),
        order,
      );
      await writeFile(
        'README.md',
        `${original}
One more line for the test.
`,
      );
      const b = answered(await askWorkspace(QUESTION));
      assert.deepEqual(
        b.meter.files.filter((f) => f.included).map((f) => f.path),
        order,
      );
      // Everything before README.md comes back from the cache (whole 128-token blocks of it).
      const before = b.meter.files.slice(0, 3).reduce((n, f) => n + f.tokens, 0);
      assert.ok(b.summary.reusedTokens >= before - 128, `reused ${b.summary.reusedTokens}; the files before README.md have ${before}`);
      assert.ok(b.summary.computedTokens < b.summary.promptTokens, 'not recomputed from scratch');
    } finally {
      fs.writeFileSync(readme, original);
      fs.utimesSync(readme, JAN, JAN);
    }
  });

  it('names the files that do not fit the token budget instead of cutting silently', async () => {
    // A budget with room for the template, question, reserve and the smallest file only.
    const full = answered(await askWorkspace(QUESTION)).meter;
    const smallest = Math.min(...full.files.map((f) => f.tokens));
    const budget = full.frameTokens + full.questionTokens + full.answerReserve + smallest;
    const o = await withSetting('contextBudget', budget, () => askWorkspace(QUESTION));
    const m = answered(o).meter;
    assert.ok(m.used <= m.budget, `used ${m.used} <= budget ${m.budget}`);
    const over = m.leftOut.filter((l) => l.reason.startsWith('over the token budget'));
    assert.ok(over.length >= 1, `files over the budget are named: ${JSON.stringify(m.leftOut)}`);
    for (const l of over) assert.ok(l.tokens !== null && l.tokens > 0);
    assert.equal(m.files.filter((f) => f.included).length + over.length, 4);
  });

  it('a model folder that does not exist fails with an error naming it', async () => {
    const missing = '/nonexistent/attend-model';
    const o = await withSetting('model.path', missing, () => askWorkspace(QUESTION));
    assert.equal(o.status, 'failed');
    assert.ok(o.error?.includes(missing), `error names the folder: ${o.error}`);
    // And the engine recovers once the setting is back.
    answered(await askFile({ question: QUESTION, uri: wsFile('harbour/log.txt') }));
  });
});
