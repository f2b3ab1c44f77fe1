// Reliability: bad input. Each case gets a clear message naming the file and the problem, and the rest of the work
// continues. Cases already covered elsewhere (binary, oversize, BOM/UTF-16, symlink loops) are linked from
// RELIABILITY.md; this file adds the ones that were not: invalid UTF-8 through gathering, CRLF/CR/mixed line endings
// through attribution, empty files and folders, unreadable files, files deleted, changed or grown while being read,
// thousands of small files, and a 10 MB line through the tokenizer.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { gatherSources } from '../../engine/sources';
import { loadTokenizer } from '../../engine/tokenizer';
import { Engine } from '../../engine/engine';
import { assemblePrompt, frameFromTemplate } from '../../engine/prompt';
import { buildPassages, type TokenAttribution } from '../../engine/attribution';
import { RankedBpe } from '../../engine/tokenizer/bpe';
import { lineIndex, offsetToPosition } from '../../engine/budget';
import { fixturePath } from '../../tools/make-fixture';
// The fs module object itself (an `import * as` namespace only has getters), so a test can replace one of its functions.
const liveFs = createRequire(__filename)('node:fs') as typeof fs;

const MODEL = fixturePath('tiny-llama');
const roots: string[] = [];
after(() => {
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

function tmpTree(files: Record<string, string | Uint8Array>): string {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'attend-rel-in-')));
  roots.push(root);
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  }
  return root;
}

const rel = (root: string, p: string): string => path.relative(root, p).split(path.sep).join('/');

/** Line of `offset` counted the way VS Code counts: \n, \r\n and a lone \r each end a line. */
function naiveLine(text: string, offset: number): number {
  let line = 0;
  for (let i = 0; i < offset; i++) {
    const c = text[i];
    if (c === '\n' || (c === '\r' && text[i + 1] !== '\n')) line++;
  }
  return line;
}

/** Temporarily replaces one function of the real `fs` module (engine code reads through live bindings). */
function patchFs<K extends keyof typeof fs>(name: K, impl: (real: (typeof fs)[K]) => (typeof fs)[K]): () => void {
  const real = liveFs[name];
  (liveFs as Record<string, unknown>)[name] = impl(real);
  return () => {
    (liveFs as Record<string, unknown>)[name] = real;
  };
}

test('invalid UTF-8: mostly-text files are kept with the bad sequences counted; garbage is skipped as binary, naming the file', () => {
  const root = tmpTree({
    'latin1.txt': Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9]), Buffer.from(' au lait\n'.repeat(40))]),
    'garbage.txt': new Uint8Array(4096).map((_, i) => 0x80 + ((i * 37) % 120)),
    'ok.txt': 'fine',
  });
  const r = gatherSources([root]);
  assert.deepEqual(
    r.documents.map((d) => rel(root, d.path)),
    ['latin1.txt', 'ok.txt'],
  );
  const latin = r.documents[0];
  assert.equal(latin.invalidSequences, 1);
  assert.ok(latin.text.startsWith('caf\ufffd au lait'));
  assert.equal(r.skipped.length, 1);
  assert.equal(rel(root, r.skipped[0].path), 'garbage.txt');
  assert.match(r.skipped[0].reason, /binary or not UTF-8 \(\d+ invalid UTF-8 sequences/);
});

test('CRLF, lone CR and mixed line endings: every passage line number equals the editor line of its offset', () => {
  const tok = loadTokenizer(MODEL);
  const lines = ['alpha one', 'beta two', 'gamma three', 'delta four', 'epsilon five', 'zeta six', 'eta seven', 'theta eight'];
  const eols = ['\r\n', '\n', '\r', '\r\n', '\r', '\n', '\r\n'];
  const docs = [
    { path: 'crlf.txt', text: lines.join('\r\n') + '\r\n' },
    { path: 'cr.txt', text: lines.join('\r') },
    { path: 'mixed.txt', text: lines.map((l, i) => l + (eols[i] ?? '')).join('') },
  ];
  const prompt = assemblePrompt(tok, frameFromTemplate(null), docs, 'Which line?');
  // One synthetic answer token per document token, attending only to it: every line of every document gets a passage.
  const perToken: TokenAttribution[] = [];
  for (let p = 0; p < prompt.ids.length; p++) {
    if (prompt.origin.doc[p] >= 0) perToken.push({ positions: Int32Array.of(p), weights: Float32Array.of(1) } as TokenAttribution);
  }
  const passages = buildPassages(perToken, prompt.origin, docs, { topK: 1000, maxLines: 1 });
  for (const [i, d] of docs.entries()) {
    const mine = passages.filter((p) => p.doc === i).sort((a, b) => a.startLine - b.startLine);
    assert.equal(mine.length, lines.length, `${d.path}: one passage per line`);
    for (const p of mine) {
      assert.equal(p.startLine, naiveLine(d.text, p.start), `${d.path}: line of offset ${p.start}`);
      assert.equal(p.startLine, offsetToPosition(lineIndex(d.text), p.start).line, `${d.path}: attribution and budget agree`);
      assert.equal(d.text.slice(p.start, p.end), lines[p.startLine], `${d.path}: a passage is its line, without the line break`);
    }
  }
});

test('CRLF and mixed line endings through a real ask: passages are whole editor lines at the right line numbers', async () => {
  const engine = await Engine.load({ modelDir: MODEL, memory: null });
  try {
    const body = Array.from({ length: 30 }, (_, i) => `Line ${i}: the keeper counted ${i * 7} ships.`);
    const text = body.map((l, i) => l + ['\r\n', '\n', '\r'][i % 3]).join('');
    const r = await engine.ask({ docs: [{ path: 'mixed.txt', text }], question: 'How many ships?', maxNewTokens: 4 });
    assert.ok(r.passages.length > 0);
    for (const p of r.passages) {
      assert.equal(p.startLine, naiveLine(text, p.start));
      assert.equal(p.endLine, naiveLine(text, p.end));
      assert.ok(!/[\r\n]$/.test(text.slice(p.start, p.end)), 'no trailing line break');
      assert.ok(p.start === 0 || /[\r\n]/.test(text[p.start - 1]), 'starts at a line start');
    }
    // Every document token maps back to its own text.
    const starts = r.prompt.origin.start;
    const ends = r.prompt.origin.end;
    let covered = '';
    for (let t = 0; t < r.prompt.ids.length; t++) if (r.prompt.origin.doc[t] === 0) covered += text.slice(starts[t], ends[t]);
    assert.equal(covered, text);
  } finally {
    await engine.dispose();
  }
});

test('empty files are documents with zero tokens; an empty folder gathers nothing and says nothing is wrong', () => {
  const root = tmpTree({ 'empty.txt': '', 'note.md': 'text' });
  const r = gatherSources([root]);
  assert.deepEqual(
    r.documents.map((d) => [rel(root, d.path), d.text]),
    [
      ['empty.txt', ''],
      ['note.md', 'text'],
    ],
  );
  const tok = loadTokenizer(MODEL);
  assert.equal(tok.count(''), 0);
  const prompt = assemblePrompt(tok, frameFromTemplate(null), [{ path: 'empty.txt', text: '' }], 'q?');
  assert.equal(prompt.docs[0].tokenEnd - prompt.docs[0].tokenStart, 0);

  const emptyDir = tmpTree({});
  const none = gatherSources([emptyDir]);
  assert.deepEqual([none.documents, none.skipped], [[], []]);
});

test('an empty workspace or only unreadable inputs: the CLI says none of the files could be read, naming each skipped one', async () => {
  const { main } = await import('../../engine/cli');
  const root = tmpTree({ 'bin.dat': new Uint8Array([0, 1, 2, 3]) });
  let err = '';
  const io = { stdout: () => undefined, stderr: (s: string) => void (err += s), cwd: root };
  const code = await main(['ask', '--model', MODEL, '--file', 'bin.dat', '--file', 'gone.md', '--no-cache', 'q?'], { io });
  assert.equal(code, 1);
  assert.match(err, /skipped bin\.dat: binary/);
  assert.match(err, /skipped gone\.md: not found/);
  assert.match(err, /none of the files could be read as text/);
});

test('an unreadable file is skipped with its errno, the rest is gathered', () => {
  const root = tmpTree({ 'secret.txt': 'no', 'open.txt': 'yes' });
  const secret = path.join(root, 'secret.txt');
  // chmod 000 does not stop root: fail the open of that one file instead (the same EACCES the kernel would give).
  const restore = patchFs(
    'openSync',
    (real) =>
      ((p: fs.PathLike, ...rest: unknown[]) => {
        if (String(p) === secret) throw Object.assign(new Error(`EACCES: permission denied, open '${secret}'`), { code: 'EACCES' });
        return (real as (...a: unknown[]) => number)(p, ...rest);
      }) as typeof fs.openSync,
  );
  fs.chmodSync(secret, 0);
  try {
    const r = gatherSources([root]);
    assert.deepEqual(
      r.documents.map((d) => rel(root, d.path)),
      ['open.txt'],
    );
    assert.deepEqual(r.skipped, [{ path: secret, reason: 'unreadable (EACCES)' }]);
  } finally {
    restore();
  }
});

test('a file deleted between listing and reading is reported by name; one that grew past the limit is not read whole', () => {
  const root = tmpTree({ 'a.txt': 'a', 'vanishing.txt': 'soon gone', 'growing.txt': 'small', 'z.txt': 'z' });
  const vanishing = path.join(root, 'vanishing.txt');
  const growing = path.join(root, 'growing.txt');
  let bytesRead = 0;
  const restoreOpen = patchFs(
    'openSync',
    (real) =>
      ((p: fs.PathLike, ...rest: unknown[]) => {
        if (String(p) === vanishing) fs.unlinkSync(vanishing);
        if (String(p) === growing) fs.appendFileSync(growing, 'x'.repeat(64 * 1024));
        return (real as (...a: unknown[]) => number)(p, ...rest);
      }) as typeof fs.openSync,
  );
  const restoreRead = patchFs(
    'readSync',
    (real) =>
      ((...a: unknown[]) => {
        const n = (real as (...x: unknown[]) => number)(...a);
        bytesRead += n;
        return n;
      }) as typeof fs.readSync,
  );
  try {
    const r = gatherSources([root], { maxFileBytes: 4096 });
    assert.deepEqual(
      r.documents.map((d) => rel(root, d.path)),
      ['a.txt', 'z.txt'],
    );
    const reasons = Object.fromEntries(r.skipped.map((s) => [rel(root, s.path), s.reason]));
    assert.equal(reasons['vanishing.txt'], 'unreadable (ENOENT)');
    assert.match(reasons['growing.txt'] ?? '', /too large \(grew past the limit 4\.0 KB while being read\)/);
    assert.ok(bytesRead <= 3 * 4097, `read ${bytesRead} bytes: never more than the limit + 1 per file`);
  } finally {
    restoreOpen();
    restoreRead();
  }
});

test('a file changed or deleted while a question runs: the answer is about the text that was read, and points into it', async () => {
  const root = tmpTree({ 'log.txt': 'The tide was high at noon.\nThe boat left at six.\n' });
  const file = path.join(root, 'log.txt');
  const gathered = gatherSources([file]);
  const engine = await Engine.load({ modelDir: MODEL, memory: null });
  try {
    const docs = gathered.documents.map((d) => ({ path: 'log.txt', text: d.text }));
    const r = await engine.ask(
      { docs, question: 'When did the boat leave?', maxNewTokens: 3 },
      {
        onPrompt: () => {
          fs.writeFileSync(file, 'completely different\n');
          fs.unlinkSync(file);
        },
      },
    );
    assert.ok(r.passages.length > 0);
    for (const p of r.passages) assert.ok(docs[0].text.slice(p.start, p.end).length > 0 && p.end <= docs[0].text.length);
    // The next ask works and the vanished file is reported, not fatal.
    const again = gatherSources([file, root]);
    assert.deepEqual(again.skipped, [{ path: file, reason: 'not found' }]);
  } finally {
    await engine.dispose();
  }
});

test('thousands of small files: all gathered in order, no descriptor left open, token counts per file', () => {
  const files: Record<string, string> = {};
  for (let i = 0; i < 3000; i++) files[`d${i % 30}/f${String(i).padStart(4, '0')}.txt`] = `file ${i}\n`;
  const root = tmpTree(files);
  const fdsBefore = fs.readdirSync('/proc/self/fd').length;
  const r = gatherSources([root]);
  const fdsAfter = fs.readdirSync('/proc/self/fd').length;
  assert.equal(r.documents.length, 3000);
  assert.equal(r.skipped.length, 0);
  const names = r.documents.map((d) => rel(root, d.path));
  assert.deepEqual(names, [...names].sort());
  assert.ok(fdsAfter <= fdsBefore + 1, `descriptors ${fdsBefore} -> ${fdsAfter}`);
  const tok = loadTokenizer(MODEL);
  const total = r.documents.reduce((s, d) => s + tok.count(d.text), 0);
  assert.ok(total >= 3000 * 3);
});

test('one 10 MB line: counted and encoded with offsets; no piece longer than the long-piece bound reaches the quadratic merge', () => {
  const tok = loadTokenizer(MODEL);
  // Spy on tiktoken's (quadratic per piece) merge: by design it only ever sees text made of short pieces.
  const proto = RankedBpe.prototype as unknown as { encodeWithLongPieces: (text: string) => Uint32Array };
  const longPieces = { calls: 0 };
  const realLong = proto.encodeWithLongPieces;
  proto.encodeWithLongPieces = function (this: unknown, text: string) {
    longPieces.calls++;
    return realLong.call(this, text);
  };
  try {
    const line = 'a'.repeat(10 * 1024 * 1024); // one pre-tokenizer piece of 10 MB
    const n = tok.count(line);
    assert.ok(n > 0);
    const enc = tok.encodeWithOffsets(line);
    assert.equal(enc.ids.length, n);
    assert.equal(enc.starts[0], 0);
    assert.equal(enc.ends[enc.ends.length - 1], line.length);
    assert.ok(longPieces.calls >= 2, 'the 10 MB piece went through the heap merge, not tiktoken');
    // A long line of short pieces (words) stays in tiktoken and is linear anyway.
    const words = 'lorem ipsum dolor sit amet '.repeat(40000);
    assert.equal(tok.decode(tok.encode(words)), words);
  } finally {
    proto.encodeWithLongPieces = realLong;
  }
});
