// The engine worker over real JSON-RPC through EngineClient: load, count, a streamed ask, cancellation mid-prefill,
// malformed requests, and a crash that is reported and followed by a restart. Uses the tsc output of engine/worker.ts
// and the generated tiny-llama fixture (node out/tools/make-fixture.js).
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EngineClient, EngineRequestError } from '../../extension/engineClient';
import type { TokenNotification, ProgressNotification } from '../../engine/protocol';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const WORKER = path.join(ROOT, 'out', 'engine', 'worker.js');
const MODEL = path.join(ROOT, 'test', 'fixtures', 'generated', 'tiny-llama');
const hasFixture = fs.existsSync(path.join(MODEL, 'config.json'));

const DOC = 'The lighthouse keeper counted ships every night.\nShe wrote the count in a blue book.\nStorms came in autumn.\n';

let client: EngineClient;
const logs: string[] = [];
const deaths: string[] = [];

before(() => {
  client = new EngineClient({ workerPath: WORKER, execPath: process.execPath, log: (l) => logs.push(l), onDied: (r) => deaths.push(r) });
  client.setModel({ modelDir: MODEL, window: null, sinks: null, weights: false });
});
after(async () => {
  await client.dispose();
});

test('load reports the model without loading weights', { skip: !hasFixture }, async () => {
  const info = await client.load(false);
  assert.equal(info.family, 'llama');
  assert.equal(info.maxPositionEmbeddings, 2048);
  assert.equal(info.weightsLoaded, false);
});

test('countTokens gives per-file counts and the prompt frame', { skip: !hasFixture }, async () => {
  const r = await client.countTokens({
    docs: [
      { path: 'a.txt', text: DOC },
      { path: 'b.txt', text: '' },
    ],
    question: 'Who counted?',
  });
  assert.equal(r.perFile.length, 2);
  assert.ok(r.perFile[0].tokens > 10);
  assert.equal(r.perFile[1].tokens, 0);
  assert.ok(r.perFile[0].overhead > 0);
  assert.ok(r.questionTokens > 0);
  assert.ok(r.framePrefixTokens + r.frameSuffixTokens >= 0);
});

test('ask streams tokens and progress, then returns passages and per-token sources', { skip: !hasFixture }, async () => {
  const tokens: TokenNotification[] = [];
  const progress: ProgressNotification[] = [];
  const result = await client.ask(
    { askId: 'a1', docs: [{ path: 'a.txt', text: DOC }], question: 'What did she count?', maxNewTokens: 6 },
    { onToken: (t) => tokens.push(t), onProgress: (p) => progress.push(p) },
  );
  assert.equal(result.askId, 'a1');
  assert.ok(result.generatedTokens > 0 || result.stopReason === 'eos');
  assert.equal(tokens.map((t) => t.text).join(''), result.tokens.map((t) => t.text).join(''));
  assert.ok(progress.some((p) => p.phase === 'prefill' && p.done === p.total));
  assert.equal(result.reusedTokens + result.computedTokens, result.promptTokens);
  for (const t of result.tokens) for (const s of t.sources) assert.ok(s.doc === 0 && s.end <= DOC.length && s.start <= s.end);
  for (const p of result.passages) assert.equal(p.path, 'a.txt');
  assert.equal(result.quote, 'off', 'the fixture model states no attend_quote_answers, so answers are free text');

  // Same documents again: the document prefix comes from the cache.
  const again = await client.ask({ askId: 'a2', docs: [{ path: 'a.txt', text: DOC }], question: 'When were storms?', maxNewTokens: 2 });
  assert.ok(again.reusedTokens > 0, 'second ask reuses the cached prefix');
});

test(
  'countTokens gives the same count before an ask (tokenizer) and after it (the remembered encoding)',
  { skip: !hasFixture },
  async () => {
    const text = `${DOC}A line only this test sends.\n`;
    const count = async () => (await client.countTokens({ docs: [{ path: 'b.txt', text }], question: 'Who counted?' })).perFile[0].tokens;
    const before = await count();
    await client.ask({ askId: 'c1', docs: [{ path: 'b.txt', text }], question: 'Who counted?', maxNewTokens: 1 });
    assert.equal(await count(), before);
  },
);

test('aborting mid-prefill cancels the request promptly', { skip: !hasFixture }, async () => {
  const long = Array.from({ length: 400 }, (_, i) => `Line ${i}: the keeper counted ${i} ships.`).join('\n');
  const ac = new AbortController();
  let prefillSteps = 0;
  const started = Date.now();
  await assert.rejects(
    client.ask(
      { askId: 'c1', docs: [{ path: 'long.txt', text: long }], question: 'How many?', maxNewTokens: 4 },
      {
        signal: ac.signal,
        onProgress: (p) => {
          if (p.phase === 'prefill' && p.done > p.reused) {
            prefillSteps++;
            ac.abort();
          }
        },
      },
    ),
    (e: unknown) => e instanceof EngineRequestError && e.cancelled,
  );
  assert.ok(prefillSteps >= 1);
  assert.ok(Date.now() - started < 30_000);
  // The worker is still usable.
  const r = await client.countTokens({ docs: [], question: 'ok' });
  assert.equal(r.perFile.length, 0);
});

test('clearCache empties the engine cache: the next ask reuses nothing', { skip: !hasFixture }, async () => {
  const r = await client.clearCache();
  assert.equal(r.cleared, true);
  const again = await client.ask({ askId: 'a3', docs: [{ path: 'a.txt', text: DOC }], question: 'What did she count?', maxNewTokens: 1 });
  assert.equal(again.reusedTokens, 0);
});

test(
  'the block size setting reaches the KV cache: 16-token blocks are written where 128-token ones are not',
  { skip: !hasFixture },
  async () => {
    for (const [blockSize, expectBlocks] of [
      [16, true],
      [undefined, false],
    ] as const) {
      const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-worker-blocks-'));
      const c = new EngineClient({ workerPath: WORKER, execPath: process.execPath, log: () => {}, onDied: () => {} });
      try {
        c.setModel({ modelDir: MODEL, window: null, sinks: null, weights: false, cacheDir, ...(blockSize ? { blockSize } : {}) });
        const r = await c.ask({ askId: 'b1', docs: [{ path: 'a.txt', text: DOC }], question: 'What did she count?', maxNewTokens: 1 });
        assert.ok(r.promptTokens > 16 && r.promptTokens < 128, `prompt of ${r.promptTokens} tokens`);
        const files = (dir: string): string[] =>
          fs
            .readdirSync(dir, { withFileTypes: true })
            .flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : [path.join(dir, e.name)]));
        // Entries holding exactly one block of the set size (the context's end is a tail entry of its own length).
        const size = blockSize ?? 128;
        const blocks = files(cacheDir).filter((f) => f.endsWith('.kv') && fs.readFileSync(f).readUInt32LE(160) === size);
        assert.equal(blocks.length > 0, expectBlocks, `block size ${size}: ${blocks.length} block files`);
      } finally {
        await c.dispose();
        fs.rmSync(cacheDir, { recursive: true, force: true });
      }
    }
  },
);

test('malformed requests are rejected with a bad-request error', { skip: !hasFixture }, async () => {
  await assert.rejects(
    client.request('ask', { askId: '', docs: 'nope', question: '', maxNewTokens: -1 } as never),
    (e: unknown) => e instanceof EngineRequestError && e.data.kind === 'bad-request',
  );
});

test('a bad model folder is reported with the file and the problem', { skip: !hasFixture }, async () => {
  const other = new EngineClient({ workerPath: WORKER, execPath: process.execPath, log: () => undefined });
  other.setModel({ modelDir: path.join(ROOT, 'no-such-model'), window: null, sinks: null, weights: false });
  try {
    await assert.rejects(
      other.load(false),
      (e: unknown) => e instanceof EngineRequestError && e.data.kind === 'bad-model' && /no-such-model/.test(e.message),
    );
  } finally {
    await other.dispose();
  }
});

test('a crash rejects pending requests with the reason and the next request restarts the worker', { skip: !hasFixture }, async () => {
  await client.countTokens({ docs: [], question: 'x' });
  const running = (client as unknown as { running: { child: { kill(s: string): boolean } } }).running;
  running.child.kill('SIGKILL');
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(deaths.length, 1);
  assert.match(deaths[0], /killed by SIGKILL/);
  const r = await client.countTokens({ docs: [{ path: 'a.txt', text: DOC }], question: 'x' });
  assert.ok(r.perFile[0].tokens > 0, 'restarted worker reloads the model');
});

test(
  'loading ahead of a question rehearses in the worker; an ask during it answers as one without, and no folder is left',
  { skip: !hasFixture },
  async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-worker-tmp-'));
    const q = { docs: [{ path: 'a.txt', text: DOC }], question: 'What did she count?', maxNewTokens: 4 };
    const run = async (preload: boolean): Promise<{ answer: string; rehearsed: boolean }> => {
      const before = process.env['TMPDIR'];
      process.env['TMPDIR'] = tmp; // the worker, started by the first request, inherits it (os.tmpdir())
      const c = new EngineClient({ workerPath: WORKER, execPath: process.execPath, log: () => {} });
      try {
        c.setModel({ modelDir: MODEL, window: null, sinks: null, weights: false });
        // A rehearsal works in a folder of its own: seen created, however soon it is gone again.
        let rehearsed = false;
        const watcher = fs.watch(tmp, (_event, name) => {
          if (name?.startsWith('attend-rehearsal-')) rehearsed = true;
        });
        try {
          if (preload) await c.load(true);
          const r = await c.ask({ askId: preload ? 'p1' : 'p0', ...q });
          return { answer: r.tokens.map((t) => t.text).join(''), rehearsed };
        } finally {
          watcher.close();
        }
      } finally {
        await c.dispose();
        if (before === undefined) delete process.env['TMPDIR'];
        else process.env['TMPDIR'] = before;
      }
    };
    const plain = await run(false);
    const preloaded = await run(true);
    assert.equal(plain.rehearsed, false);
    assert.equal(preloaded.rehearsed, true, 'a rehearsal folder was created');
    assert.equal(preloaded.answer, plain.answer);
    assert.deepEqual(
      fs.readdirSync(tmp).filter((f) => f.startsWith('attend-rehearsal-')),
      [],
    );
  },
);
