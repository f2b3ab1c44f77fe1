// Engine.rehearse: two asks about a made-up document in a private temporary folder, so that a new process's first real
// question does not pay for first runs. It must leave no trace (answers, cache folder, temporary files), stop when an
// ask or dispose comes, and never fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Engine, type AskRequest, type AskResult } from '../../engine/engine';
import { KvBlockStore } from '../../engine/kvstore';

const root = path.resolve(__dirname, '..', '..', '..');
const modelDir = path.join(root, 'models', 'attend-default');

function notes(): string {
  const lines: string[] = [];
  for (let i = 0; i < 40; i++) {
    lines.push(`Note ${i}: the build of module ${i} finished after ${(i * 37) % 91} seconds on runner ${i % 7}.`);
    if (i === 5) lines.push('Remember this number, it is the passkey: 482913.');
  }
  return lines.join('\n');
}
const req: AskRequest = { docs: [{ path: 'notes.txt', text: notes() }], question: 'Which number is the passkey?', maxNewTokens: 12 };

/** A private TMPDIR for the test (os.tmpdir() reads it on every call), restored afterwards. */
async function withTmp<T>(tmp: string, f: () => Promise<T>): Promise<T> {
  const before = process.env['TMPDIR'];
  process.env['TMPDIR'] = tmp;
  try {
    return await f();
  } finally {
    if (before === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = before;
  }
}

async function load(cacheDir: string, warn?: (m: string) => void): Promise<Engine> {
  return Engine.load({
    modelDir,
    cacheDir,
    window: 64,
    sinks: 4,
    blockSize: 16,
    chunkSize: 32,
    memory: { topK: 1 },
    ...(warn ? { warn } : {}),
  });
}

const fresh = (name: string): string => fs.mkdtempSync(path.join(os.tmpdir(), `attend-${name}-`));
const listing = (dir: string): string[] => (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
const rehearsalFolders = (tmp: string): string[] => fs.readdirSync(tmp).filter((f) => f.startsWith('attend-rehearsal-'));
const sameAnswer = (a: AskResult, b: AskResult): void => {
  assert.equal(a.answer, b.answer);
  assert.deepEqual(a.readings, b.readings);
  assert.deepEqual(a.tokens, b.tokens);
  assert.deepEqual(a.passages, b.passages);
  assert.equal(a.reusedTokens, b.reusedTokens);
  assert.equal(a.computedTokens, b.computedTokens);
};

/** The answer of an engine that never rehearsed, on its own cache folder. */
let reference: AskResult | null = null;
async function referenceAnswer(): Promise<AskResult> {
  if (!reference) {
    const engine = await load(fresh('rt-ref'));
    try {
      reference = await engine.ask(req);
    } finally {
      await engine.dispose();
    }
  }
  return reference;
}

test('a rehearsal asks through the engine, from disk too, and leaves answers, cache folder and temporary folder as they were', async () => {
  const tmp = fresh('rt-tmp');
  const cache = fresh('rt-cache');
  const expected = await referenceAnswer();
  const engine = await withTmp(tmp, () => load(cache));
  try {
    const before = listing(cache);
    const reads = { blocks: 0 };
    const realRead = KvBlockStore.prototype.read;
    KvBlockStore.prototype.read = function (this: KvBlockStore, ...a: Parameters<typeof realRead>) {
      reads.blocks++;
      return realRead.apply(this, a);
    };
    try {
      await withTmp(tmp, () => engine.rehearse());
    } finally {
      KvBlockStore.prototype.read = realRead;
    }
    assert.ok(reads.blocks > 0, 'the second rehearsal ask restores blocks from disk');
    assert.deepEqual(listing(cache), before, "the user's cache folder is untouched");
    assert.deepEqual(rehearsalFolders(tmp), [], 'the rehearsal folder is removed');
    await engine.rehearse(); // once per engine: a second call does nothing more
    sameAnswer(await engine.ask(req), expected);
  } finally {
    await engine.dispose();
  }
});

test('an ask during a rehearsal stops it and answers as without one', async () => {
  const tmp = fresh('rt-tmp');
  const expected = await referenceAnswer();
  const engine = await withTmp(tmp, () => load(fresh('rt-cache')));
  try {
    let done = false;
    const rehearsal = withTmp(tmp, () => engine.rehearse()).then(() => (done = true));
    let doneAtStart: boolean | null = null;
    const got = await engine.ask(req, { onPrompt: () => (doneAtStart = done) });
    assert.equal(doneAtStart, true, 'the ask began after the rehearsal stopped');
    await rehearsal;
    sameAnswer(got, expected);
    assert.deepEqual(rehearsalFolders(tmp), []);
  } finally {
    await engine.dispose();
  }
});

test('dispose during a rehearsal stops it and removes its folder', async () => {
  const tmp = fresh('rt-tmp');
  const engine = await withTmp(tmp, () => load(fresh('rt-cache')));
  const rehearsal = withTmp(tmp, () => engine.rehearse());
  await engine.dispose();
  await rehearsal;
  assert.deepEqual(rehearsalFolders(tmp), []);
});

test('a rehearsal that cannot run warns, and the engine answers as without one', async () => {
  const warnings: string[] = [];
  const expected = await referenceAnswer();
  const engine = await load(fresh('rt-cache'), (m) => warnings.push(m));
  try {
    await withTmp(path.join(os.tmpdir(), 'attend-no-such-folder', 'deeper'), () => engine.rehearse());
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /^rehearsal at load failed \(the engine is unaffected\): .*attend-no-such-folder/);
    sameAnswer(await engine.ask(req), expected);
  } finally {
    await engine.dispose();
  }
});

test('no rehearsal where its document would be long (a window of thousands of tokens)', async () => {
  const tmp = fresh('rt-tmp');
  const engine = await Engine.load({ modelDir, cacheDir: fresh('rt-cache'), window: 8192, memory: { topK: 1 } });
  try {
    const steps = { n: 0 };
    const decoder = (engine as unknown as { decoder: { step: (...a: unknown[]) => Promise<unknown> } }).decoder;
    const real = decoder.step.bind(decoder);
    decoder.step = (...a) => (steps.n++, real(...a));
    await withTmp(tmp, () => engine.rehearse());
    assert.equal(steps.n, 0);
    assert.deepEqual(fs.readdirSync(tmp), []);
  } finally {
    await engine.dispose();
  }
});
