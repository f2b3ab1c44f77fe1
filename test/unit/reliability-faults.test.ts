// Reliability: faults. Nothing is lost and the next ask works after: the worker SIGKILLed mid-prefill, processes
// SIGKILLed while writing cache blocks (every file left behind reads back valid), a full disk (a real 256 KB tmpfs when
// we may mount one, else ENOSPC from a stubbed write), a read-only cache folder (a read-only tmpfs, else chmod), two
// worker processes sharing one cache, two asks at once, and cancellation at every engine stage.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { EngineClient, EngineRequestError } from '../../extension/engineClient';
import { Engine, CancelledError } from '../../engine/engine';
import { KvBlockStore, type KvGeometry } from '../../engine/kvstore';
import type { ProgressNotification } from '../../engine/protocol';
import { fixturePath } from '../../tools/make-fixture';
// The fs module object itself (an `import * as` namespace only has getters), so a test can replace one of its functions.
const liveFs = createRequire(__filename)('node:fs') as typeof fs;

const ROOT = path.resolve(__dirname, '..', '..', '..');
const WORKER = path.join(ROOT, 'out', 'engine', 'worker.js');
const MODEL = fixturePath('tiny-llama');
const LONG = Array.from({ length: 160 }, (_, i) => `Line ${i}: the keeper counted ${i * 7} ships in the ${i % 12}th month.`).join('\n');
const SHORT = 'The keeper counted ships every night.\nShe wrote the count in a blue book.\n';

const cleanups: (() => void)[] = [];
after(() => {
  for (const c of cleanups.reverse()) c();
});

function tmp(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanups.push(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

const ENTRY = /^[0-9a-f]{64}\.kv$/;
const TABLE = /^[0-9a-f]{64}\.kvs$/;
const TEMP = /^\.[0-9a-f]{64}\.\d+\.[0-9a-f]+\.tmp$/;

/** A summary table (block memory's one-read ranking keys) read back through a store built from its own header. */
function verifyTable(dir: string, file: string): void {
  const buf = fs.readFileSync(file);
  assert.ok(buf.length >= 176 + 32, `${file}: ${buf.length} bytes`);
  const fingerprint = buf.toString('latin1', 16, 80);
  const key = buf.toString('latin1', 80, 144);
  const geometry: KvGeometry = { nLayers: buf.readUInt32LE(148), nKvHeads: buf.readUInt32LE(152), headDim: buf.readUInt32LE(156) };
  const tokens = buf.readUInt32LE(160) * buf.readUInt32LE(168);
  const ids = Array.from({ length: tokens }, (_, i) => buf.readInt32LE(176 + 4 * i));
  const warnings: string[] = [];
  const store = new KvBlockStore(dir, { maxBytes: 2 ** 40, geometry, fingerprint, warn: (w) => warnings.push(w) });
  assert.equal(key, path.basename(file).slice(0, 64), `${file} holds table ${key}`);
  assert.ok(store.readSummaryTable(key, ids) !== null, `${file} does not read back: ${warnings.join('; ')}`);
  assert.deepEqual(warnings, []);
}

/**
 * Every block entry under a store folder, read back through a KvBlockStore built from the file's own header (its
 * fingerprint, geometry and token ids): all must decode and pass every check. Temp files (a writer killed before its
 * rename) may remain; they are never entries. Returns the number of entries and leftover temp files.
 */
function verifyStore(dir: string): { entries: number; temps: number } {
  let entries = 0;
  let temps = 0;
  for (const m of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    const md = path.join(dir, m);
    if (!fs.statSync(md).isDirectory()) continue;
    for (const s of fs.readdirSync(md)) {
      const sd = path.join(md, s);
      if (/^retrieval-heads\.json\.\d+\.tmp$/.test(s)) {
        temps++;
        continue;
      }
      if (s === 'retrieval-heads.json') {
        // Block memory's head weights (engine/retrieval-heads.ts), published by rename: always complete JSON.
        const saved = JSON.parse(fs.readFileSync(sd, 'utf8')) as { weights: unknown };
        assert.ok(saved.weights === null || Array.isArray(saved.weights), `${sd}: weights`);
        continue;
      }
      if (s === 'encodings') {
        // Cached document encodings (engine/encoding-cache.ts): complete files with a valid checksum, or temp files.
        for (const name of fs.readdirSync(sd)) {
          if (TEMP.test(name)) continue;
          assert.match(name, /^[0-9a-f]{64}\.enc$/, `unexpected file ${path.join(sd, name)}`);
          const buf = fs.readFileSync(path.join(sd, name));
          const body = buf.subarray(0, buf.length - 32);
          assert.ok(
            createHash('sha256')
              .update(body)
              .digest()
              .equals(buf.subarray(buf.length - 32)),
            `${name}: checksum`,
          );
        }
        continue;
      }
      for (const name of fs.readdirSync(sd)) {
        if (TEMP.test(name)) {
          temps++;
          continue;
        }
        if (TABLE.test(name)) {
          verifyTable(dir, path.join(sd, name));
          entries++;
          continue;
        }
        assert.match(name, ENTRY, `unexpected file ${path.join(sd, name)}`);
        const buf = fs.readFileSync(path.join(sd, name));
        assert.ok(buf.length >= 168 + 32, `${name}: ${buf.length} bytes`);
        const fingerprint = buf.toString('latin1', 16, 80);
        const hash = buf.toString('latin1', 80, 144);
        const geometry: KvGeometry = { nLayers: buf.readUInt32LE(148), nKvHeads: buf.readUInt32LE(152), headDim: buf.readUInt32LE(156) };
        const len = buf.readUInt32LE(160);
        const ids = Array.from({ length: len }, (_, i) => buf.readInt32LE(168 + 4 * i));
        const warnings: string[] = [];
        const store = new KvBlockStore(dir, { maxBytes: 2 ** 40, geometry, fingerprint, warn: (w) => warnings.push(w) });
        assert.equal(hash, name.slice(0, 64), `${name} holds block ${hash}`);
        const block = store.read(hash, ids);
        assert.ok(block !== null, `${name} does not read back: ${warnings.join('; ')}`);
        assert.deepEqual(warnings, []);
        entries++;
      }
    }
  }
  return { entries, temps };
}

/**
 * How a cancelled ask ended: rejected as cancelled (caught before or during prefill), or resolved with stopReason
 * "cancelled" (the cancel reached the worker once decoding had begun: the partial answer is kept). Anything else fails.
 */
async function cancelOutcome(p: Promise<{ stopReason: string; generatedTokens: number }>): Promise<string> {
  try {
    const r = await p;
    assert.equal(r.stopReason, 'cancelled', 'a cancelled ask must not run to its end');
    return `stopped after ${r.generatedTokens} tokens`;
  } catch (e) {
    assert.ok(e instanceof EngineRequestError && e.cancelled, `rejected as cancelled, got ${String(e)}`);
    return 'rejected';
  }
}

function newClient(log: string[] = []): EngineClient {
  const c = new EngineClient({ workerPath: WORKER, execPath: process.execPath, log: (l) => log.push(l) });
  cleanups.push(() => void c.dispose());
  return c;
}

function childOf(client: EngineClient): { pid: number; kill(s: string): boolean } {
  return (client as unknown as { running: { child: { pid: number; kill(s: string): boolean } } }).running.child;
}

/** Mounts a tmpfs (root only); null when this machine will not let us. */
function mountTmpfs(options: string): string | null {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return null;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-tmpfs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    fs.rmdirSync(dir);
    return null;
  }
  cleanups.push(() => {
    try {
      execFileSync('umount', [dir], { stdio: 'ignore' });
      fs.rmdirSync(dir);
    } catch {
      /* left for the OS */
    }
  });
  return dir;
}

test('the worker SIGKILLed mid-prefill: the ask fails naming the kill, every cached block reads back valid, the next ask reuses them', async () => {
  const cacheDir = tmp('attend-rel-kill-');
  const client = newClient();
  client.setModel({ modelDir: MODEL, window: null, sinks: null, weights: false, cacheDir });
  let killedAt = -1;
  await assert.rejects(
    client.ask(
      { askId: 'k1', docs: [{ path: 'long.txt', text: LONG }], question: 'How many ships?', maxNewTokens: 4 },
      {
        onProgress: (p) => {
          if (killedAt < 0 && p.phase === 'prefill' && p.done > p.reused && p.done < p.total) {
            killedAt = p.done;
            childOf(client).kill('SIGKILL');
          }
        },
      },
    ),
    (e: unknown) => e instanceof EngineRequestError && /killed by SIGKILL/.test(e.message),
  );
  assert.ok(killedAt > 0, 'killed while prefilling');
  const { entries } = verifyStore(cacheDir);
  assert.ok(entries >= 1, 'blocks completed before the kill were published');
  const again = await client.ask({ askId: 'k2', docs: [{ path: 'long.txt', text: LONG }], question: 'How many ships?', maxNewTokens: 4 });
  assert.ok(again.reusedTokens >= 128, `reused ${again.reusedTokens}`);
  assert.ok(again.reusedTokens + again.computedTokens >= again.promptTokens, 'every prompt token reused or computed');
  verifyStore(cacheDir);
});

test('processes SIGKILLed while writing blocks: every entry left behind reads back valid, leftovers are only temp files', async () => {
  const dir = tmp('attend-rel-writer-');
  const script = `
    const { KvBlockStore, blockHashes } = require(${JSON.stringify(path.join(ROOT, 'out', 'engine', 'kvstore.js'))});
    const g = { nLayers: 8, nKvHeads: 8, headDim: 64 };
    const len = 256; // 8 MB a block: the kill lands mid-write often
    const store = new KvBlockStore(process.argv[1], { maxBytes: 2 ** 40, geometry: g, fingerprint: 'cd'.repeat(32), warn: () => {} });
    let seed = Number(process.argv[2]);
    process.send('ready');
    for (let b = 0; ; b++) {
      const ids = Int32Array.from({ length: len }, (_, i) => (seed * 7919 + b * 131 + i) % 50000);
      const per = g.nKvHeads * len * g.headDim;
      const layer = () => new Float32Array(per).fill(b + seed);
      const [hash] = blockHashes('cd'.repeat(32), ids, len);
      store.write(hash, { tokenIds: ids, positions: Int32Array.from({ length: len }, (_, i) => i), keys: Array.from({ length: g.nLayers }, layer), values: Array.from({ length: g.nLayers }, layer) });
    }
  `;
  for (let round = 0; round < 6; round++) {
    const child = spawn(process.execPath, ['-e', script, dir, String(round)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    await new Promise<void>((resolve) => child.once('message', () => resolve()));
    await new Promise((r) => setTimeout(r, 150 + round * 70));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
  const { entries, temps } = verifyStore(dir);
  assert.ok(entries > 0, 'some blocks were published');
  // Not asserted (timing), but reported: how many kills landed between create and rename.
  process.stdout.write(`# ${entries} published blocks verified, ${temps} half-written temp files left (never read)\n`);
});

test('disk full: answers match the uncached ones, one warning says caching is off, the next ask works, no bad entry', async () => {
  const mounted = mountTmpfs('size=256k');
  const cacheDir = mounted ?? tmp('attend-rel-enospc-');
  const warnings: string[] = [];
  let restore = (): void => undefined;
  if (!mounted) {
    // No tmpfs here: the same ENOSPC from the write that fills the disk, through the real fs module.
    const real = liveFs.writeSync;
    let written = 0;
    (liveFs as { writeSync: unknown }).writeSync = (fd: number, buf: Uint8Array, ...rest: unknown[]) => {
      written += buf.length;
      if (written > 256 * 1024) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      return (real as (...a: unknown[]) => number)(fd, buf, ...rest);
    };
    restore = () => ((liveFs as { writeSync: unknown }).writeSync = real);
  }
  const cached = await Engine.load({ modelDir: MODEL, cacheDir, memory: null, warn: (w) => warnings.push(w) });
  const plain = await Engine.load({ modelDir: MODEL, memory: null, warn: () => undefined });
  try {
    const req = { docs: [{ path: 'long.txt', text: LONG }], question: 'How many ships?', maxNewTokens: 6 };
    const a = await cached.ask(req);
    const b = await plain.ask(req);
    assert.equal(a.answer, b.answer);
    assert.equal(cached.store.readOnlyReason, 'ENOSPC');
    const off = warnings.filter((w) => /ENOSPC/.test(w) && /caching to disk is off for this session, answers continue without it/.test(w));
    assert.equal(off.length, 1, warnings.join('\n'));
    cached.clearMemoryCache();
    const again = await cached.ask({ ...req, question: 'Which month?' });
    assert.equal(again.reusedTokens + again.computedTokens, again.promptTokens);
    assert.equal(again.answer.length > 0 || again.stopReason === 'eos', true);
    assert.equal(warnings.filter((w) => /ENOSPC/.test(w)).length, 1, 'warned once per session');
    verifyStore(cacheDir);
  } finally {
    restore();
    await cached.dispose();
    await plain.dispose();
  }
  process.stdout.write(`# disk full simulated with ${mounted ? 'a real 256 KB tmpfs' : 'a stubbed ENOSPC write'}\n`);
});

test('a read-only cache folder: answers work without caching, with a warning naming the folder and the reason', async () => {
  const mounted = mountTmpfs('size=1m,ro');
  let cacheDir = mounted;
  if (!cacheDir) {
    cacheDir = tmp('attend-rel-ro-');
    fs.chmodSync(cacheDir, 0o555);
  }
  const log: string[] = [];
  const client = newClient(log);
  client.setModel({ modelDir: MODEL, window: null, sinks: null, weights: false, cacheDir });
  const r1 = await client.ask({ askId: 'r1', docs: [{ path: 'long.txt', text: LONG }], question: 'How many ships?', maxNewTokens: 4 });
  const r2 = await client.ask({ askId: 'r2', docs: [{ path: 'long.txt', text: LONG }], question: 'Which month?', maxNewTokens: 4 });
  assert.equal(r1.reusedTokens, 0);
  assert.ok(r2.reusedTokens > 0, 'in-process reuse still works');
  const warn = log.filter((l) => l.startsWith('[warn]') && l.includes(cacheDir) && /EROFS|EACCES/.test(l));
  assert.equal(warn.length, 1, log.join('\n'));
  assert.match(warn[0], /answers continue without it/);
  assert.deepEqual(fs.readdirSync(cacheDir), []);
  if (!mounted) fs.chmodSync(cacheDir, 0o755);
});

test('two worker processes sharing one cache folder: both answer as one would, and every entry is valid', async () => {
  const cacheDir = tmp('attend-rel-shared-');
  const [c1, c2] = [newClient(), newClient()];
  for (const c of [c1, c2]) c.setModel({ modelDir: MODEL, window: null, sinks: null, weights: false, cacheDir });
  const req = (askId: string) => ({ askId, docs: [{ path: 'long.txt', text: LONG }], question: 'How many ships?', maxNewTokens: 5 });
  const [a, b] = await Promise.all([c1.ask(req('s1')), c2.ask(req('s2'))]);
  assert.equal(a.answer, b.answer);
  const c3 = newClient();
  c3.setModel({ modelDir: MODEL, window: null, sinks: null, weights: false, cacheDir });
  const c = await c3.ask(req('s3'));
  assert.equal(c.answer, a.answer);
  assert.ok(c.reusedTokens > 0, 'a third process restores what the two wrote');
  assert.ok(verifyStore(cacheDir).entries > 0);
});

test('two asks at once: the worker queues them (the second starts after the first ends); the extension cancels the first', async () => {
  const client = newClient();
  client.setModel({ modelDir: MODEL, window: null, sinks: null, weights: false });
  const events: string[] = [];
  const on = (id: string) => ({
    onProgress: (p: ProgressNotification) => events.push(`${id}:${p.phase}`),
    onToken: () => events.push(`${id}:token`),
  });
  const first = client
    .ask({ askId: 'q1', docs: [{ path: 'a.txt', text: LONG }], question: 'How many?', maxNewTokens: 4 }, on('q1'))
    .then((r) => {
      events.push('q1:done');
      return r;
    });
  const second = client.ask({ askId: 'q2', docs: [{ path: 'b.txt', text: SHORT }], question: 'What book?', maxNewTokens: 4 }, on('q2'));
  const [r1, r2] = await Promise.all([first, second]);
  assert.equal(r1.askId, 'q1');
  assert.equal(r2.askId, 'q2');
  const firstOfQ2 = events.findIndex((e) => e.startsWith('q2:'));
  const lastOfQ1 = events.lastIndexOf('q1:done');
  assert.ok(firstOfQ2 > events.lastIndexOf('q1:token') || events.lastIndexOf('q1:token') < 0, events.join(' '));
  assert.ok(lastOfQ1 >= 0);

  // What extension/ask.ts does: a new ask aborts the running one first. The first is cancelled, the second answers.
  const ac = new AbortController();
  const cancelled = client.ask(
    { askId: 'q3', docs: [{ path: 'a.txt', text: LONG + '\nmore' }], question: 'How many?', maxNewTokens: 64 },
    {
      signal: ac.signal,
      onProgress: (p) => {
        if (p.phase === 'prefill' && p.done > p.reused) ac.abort();
      },
    },
  );
  const next = client.ask({ askId: 'q4', docs: [{ path: 'b.txt', text: SHORT }], question: 'What book?', maxNewTokens: 4 });
  await cancelOutcome(cancelled);
  assert.equal((await next).askId, 'q4');
});

test('cancel at every engine stage (load, prefill, retrieval, decode): cancelled promptly, and the next ask works', async () => {
  // load: while the weights load (the worker reports phase "load" first).
  const client = newClient();
  client.setModel({ modelDir: MODEL, window: null, sinks: null, weights: false });
  const ac = new AbortController();
  const atLoad = await cancelOutcome(
    client.ask(
      { askId: 'c-load', docs: [{ path: 'a.txt', text: SHORT }], question: 'Who?', maxNewTokens: 64 },
      { signal: ac.signal, onProgress: (p) => p.phase === 'load' && ac.abort() },
    ),
  );
  // The tiny model loads and prefills faster than the cancel travels; it lands at the latest before the first token.
  assert.ok(atLoad === 'rejected' || atLoad === 'stopped after 0 tokens', atLoad);
  // decode: after the first token the answer stops, reported as cancelled.
  const ad = new AbortController();
  const tokens: string[] = [];
  await cancelOutcome(
    client.ask(
      { askId: 'c-dec', docs: [{ path: 'a.txt', text: SHORT }], question: 'Who?', maxNewTokens: 64 },
      {
        signal: ad.signal,
        onToken: (t) => {
          tokens.push(t.text);
          ad.abort();
        },
      },
    ),
  );
  assert.ok(tokens.length < 64);
  const ok = await client.ask({ askId: 'c-ok', docs: [{ path: 'a.txt', text: SHORT }], question: 'Who?', maxNewTokens: 3 });
  assert.equal(ok.askId, 'c-ok');

  // prefill and retrieval, in the engine itself (block memory on, a small window so far blocks exist).
  const cacheDir = tmp('attend-rel-cancel-');
  const engine = await Engine.load({ modelDir: MODEL, cacheDir, window: 64, sinks: 4, blockSize: 16, chunkSize: 32, memory: { topK: 2 } });
  try {
    const req = { docs: [{ path: 'long.txt', text: LONG }], question: 'How many ships?', maxNewTokens: 4 };
    const pf = new AbortController();
    await assert.rejects(
      engine.ask(req, { signal: pf.signal, onProgress: (p) => p.phase === 'prefill' && p.done > 0 && pf.abort() }),
      CancelledError,
    );
    verifyStore(cacheDir);
    // Retrieval: abort inside the question's probe step (the step that asks for queries).
    type Step = (state: unknown, ids: unknown, opts?: { queries?: boolean }) => Promise<unknown>;
    const decoder = (engine as unknown as { decoder: { step: Step } }).decoder;
    const realStep = decoder.step.bind(decoder);
    const rt = new AbortController();
    let probed = 0;
    decoder.step = (state, ids, opts) => {
      if (opts?.queries) {
        probed++;
        rt.abort();
      }
      return realStep(state, ids, opts);
    };
    await assert.rejects(engine.ask(req, { signal: rt.signal }), CancelledError);
    assert.equal(probed, 1, 'the abort came during retrieval');
    decoder.step = realStep;
    const r = await engine.ask(req);
    assert.ok(r.reusedTokens > 0 && r.retrieved.length > 0, 'the next ask restores the cache and retrieves');
    verifyStore(cacheDir);
  } finally {
    await engine.dispose();
  }
});
