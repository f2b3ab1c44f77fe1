// `attend ask` end to end on the fixture model: streamed text, passages that point into the given file, JSON output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../../engine/cli';
import { fixturePath } from '../../tools/make-fixture';

function capture(cwd: string) {
  let out = '';
  let err = '';
  return {
    io: { stdout: (s: string) => void (out += s), stderr: (s: string) => void (err += s), cwd },
    get out() {
      return out;
    },
    get err() {
      return err;
    },
  };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-ask-'));
const lines = ['The pass key is 71432.', ...Array.from({ length: 40 }, (_, i) => `Filler line ${i} about nothing in particular.`)];
fs.writeFileSync(path.join(dir, 'notes.md'), lines.join('\n'));

test('attend ask --json: answer, cache accounting and passages inside the file', async () => {
  const c = capture(dir);
  const code = await main(
    ['ask', '--model', fixturePath('tiny-llama'), '--file', 'notes.md', '--no-cache', '--max-new', '4', '--json', 'What is the pass key?'],
    {
      io: c.io,
    },
  );
  assert.equal(code, 0, c.err);
  const r = JSON.parse(c.out) as {
    answer: string;
    promptTokens: number;
    reusedTokens: number;
    computedTokens: number;
    passages: { path: string; location: string; text: string; score: number }[];
  };
  assert.equal(typeof r.answer, 'string');
  assert.equal(r.reusedTokens, 0);
  assert.ok(r.computedTokens >= r.promptTokens);
  assert.ok(r.passages.length > 0);
  const text = fs.readFileSync(path.join(dir, 'notes.md'), 'utf8');
  for (const p of r.passages) {
    assert.equal(p.path, 'notes.md');
    assert.match(p.location, /^notes\.md:\d+(-\d+)?$/);
    assert.ok(text.includes(p.text), 'passage text is a slice of the file');
    assert.ok(p.score > 0 && p.score <= 1);
  }
});

test('attend ask: a second run in a new engine reuses the cache on disk', async () => {
  const cache = path.join(dir, 'cache');
  const args = ['ask', '--model', fixturePath('tiny-llama'), '--file', 'notes.md', '--cache', cache, '--window', '64', '--max-new', '2'];
  const first = capture(dir);
  assert.equal(await main([...args, 'first question?'], { io: first.io }), 0, first.err);
  assert.match(first.out, /0 reused \(none\)/);
  const second = capture(dir);
  assert.equal(await main([...args, 'second question?'], { io: second.io }), 0, second.err);
  assert.match(second.out, /[1-9][\d,]* reused \(disk\)/);
});

test('attend ask without --file is a usage error', async () => {
  const c = capture(dir);
  assert.equal(await main(['ask', '--model', fixturePath('tiny-llama'), 'question?'], { io: c.io }), 2);
  assert.match(c.err, /--file/);
});

test('attend ask: a bad --quote, --second-reading or --memory-lexical-weight is a usage error (exit 2) naming the flag', async () => {
  for (const [flag, value, re] of [
    ['--quote', 'yes', /--quote must be on or off, got "yes"/],
    ['--second-reading', 'twice', /--second-reading must be on or off, got "twice"/],
    ['--memory-lexical-weight', 'lots', /--memory-lexical-weight must be a number >= 0, got "lots"/],
  ] as const) {
    const c = capture(dir);
    const code = await main(['ask', '--model', fixturePath('tiny-llama'), '--file', 'notes.md', '--no-cache', flag, value, 'Q?'], {
      io: c.io,
    });
    assert.equal(code, 2, `${flag} ${value}`);
    assert.match(c.err, re);
  }
});
