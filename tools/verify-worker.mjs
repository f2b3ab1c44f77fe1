// End-to-end check of the bundled engine worker over raw JSON-RPC (independent of extension/engineClient.ts):
// load a model, count tokens, ask a question (streamed tokens + final result), cancel one ask mid-prefill, shut down.
// Usage: node tools/verify-worker.mjs [--worker dist/worker.js] [--model test/fixtures/generated/tiny-llama]
// Run it on a copy of dist/ outside the repo to prove the bundle does not lean on the repo's node_modules.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const rpc = require('vscode-jsonrpc/node');

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const workerPath = resolve(arg('--worker', 'dist/worker.js'));
const modelDir = resolve(arg('--model', 'test/fixtures/generated/tiny-llama'));

const child = spawn(process.execPath, [workerPath], {
  stdio: ['pipe', 'pipe', 'pipe'],
  env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
});
child.stderr.on('data', (d) => process.stderr.write(`  [worker] ${d}`));
const conn = rpc.createMessageConnection(new rpc.StreamMessageReader(child.stdout), new rpc.StreamMessageWriter(child.stdin));
const tokens = new Map();
const progress = new Map();
conn.onNotification('token', (t) => (tokens.get(t.askId) ?? tokens.set(t.askId, []).get(t.askId)).push(t));
conn.onNotification('progress', (p) => {
  (progress.get(p.askId) ?? progress.set(p.askId, []).get(p.askId)).push(p);
  progressHook?.(p);
});
conn.onNotification('log', (m) => console.log(`  [log ${m.level}] ${m.message}`));
let progressHook = null;
conn.listen();

const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
};

const doc = 'The lighthouse keeper counted ships every night.\nShe wrote the count in a blue book.\nStorms came in autumn.\n';
try {
  const info = await conn.sendRequest('load', { modelDir, window: null, sinks: null, weights: true, cacheDir: null });
  check(
    info.weightsLoaded === true,
    `load: ${info.family}, context ${info.maxPositionEmbeddings}, window ${info.window}, sinks ${info.sinks}`,
  );

  const counts = await conn.sendRequest('countTokens', { docs: [{ path: 'keeper.txt', text: doc }], question: 'What did she count?' });
  check(
    counts.perFile[0].tokens > 0,
    `countTokens: keeper.txt ${counts.perFile[0].tokens} tokens (+${counts.perFile[0].overhead} framing), question ${counts.questionTokens}`,
  );

  const t0 = Date.now();
  const result = await conn.sendRequest('ask', {
    askId: 'q1',
    docs: [{ path: 'keeper.txt', text: doc }],
    question: 'What did she count?',
    maxNewTokens: 12,
  });
  const streamed = tokens.get('q1') ?? [];
  check(
    streamed.length === result.tokens.length,
    `ask: ${streamed.length} tokens streamed, ${result.tokens.length} in the result (${Date.now() - t0} ms)`,
  );
  check(
    streamed.map((t) => t.text).join('') === result.answer || result.stopReason === 'stop',
    `ask: streamed text equals the answer ${JSON.stringify(result.answer)}`,
  );
  check(
    result.promptTokens === result.reusedTokens + result.computedTokens,
    `ask: ${result.promptTokens} prompt tokens = ${result.reusedTokens} reused + ${result.computedTokens} computed; stop ${result.stopReason}`,
  );
  check(
    result.passages.length > 0 && result.passages.every((p) => p.path === 'keeper.txt'),
    `ask: ${result.passages.length} passages, top ${JSON.stringify(result.passages[0] && { lines: [result.passages[0].startLine, result.passages[0].endLine], score: +result.passages[0].score.toFixed(3) })}`,
  );
  check(
    (progress.get('q1') ?? []).some((p) => p.phase === 'prefill'),
    `ask: ${(progress.get('q1') ?? []).length} progress notifications`,
  );

  // Cancel mid-prefill: a long document, cancel on the first computed chunk.
  const long = Array.from({ length: 600 }, (_, i) => `Line ${i}: the keeper counted ${i} ships and wrote it down.`).join('\n');
  const cts = new rpc.CancellationTokenSource();
  let cancelledAt = null;
  progressHook = (p) => {
    if (p.askId === 'q2' && p.phase === 'prefill' && p.done > p.reused && cancelledAt === null) {
      cancelledAt = p;
      cts.cancel();
    }
  };
  const t1 = Date.now();
  let outcome;
  try {
    const r = await conn.sendRequest(
      'ask',
      { askId: 'q2', docs: [{ path: 'long.txt', text: long }], question: 'How many?', maxNewTokens: 8 },
      cts.token,
    );
    outcome = `completed (${r.stopReason})`;
  } catch (e) {
    outcome = `error ${e.code}: ${e.message}`;
  }
  const last = (progress.get('q2') ?? []).at(-1);
  check(
    /-32800/.test(outcome) && last.done < last.total,
    `cancel: ${outcome} after prefill ${cancelledAt?.done}/${cancelledAt?.total}; last progress ${last.done}/${last.total}; ${Date.now() - t1} ms`,
  );

  // Still serving after the cancel.
  const after = await conn.sendRequest('ask', {
    askId: 'q3',
    docs: [{ path: 'keeper.txt', text: doc }],
    question: 'When were storms?',
    maxNewTokens: 4,
  });
  check(after.reusedTokens > 0, `after cancel: ask answered, ${after.reusedTokens} tokens reused from cache`);

  try {
    await conn.sendRequest('ask', { askId: '', docs: 'x' });
    check(false, 'malformed ask rejected');
  } catch (e) {
    check(e.code === -32602, `malformed ask rejected: ${e.message}`);
  }

  await conn.sendRequest('shutdown', {});
  child.stdin.end();
  const code = await new Promise((r) => child.once('exit', (c) => r(c)));
  check(code === 0, `shutdown: exit code ${code}`);
} catch (e) {
  check(false, `unexpected: ${e.stack ?? e}`);
  child.kill();
}
console.log(failures.length === 0 ? 'worker verified' : `${failures.length} check(s) failed`);
process.exit(failures.length === 0 ? 0 : 1);
