// Cancelling a running ask through the Attend: Cancel Question command, and clearing the engine's KV cache (memory
// and disk), in a real extension host with the real engine worker.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { before, describe, it } from 'mocha';
import * as vscode from 'vscode';
import type { AskOutcome, AttendApi } from '../../extension/api';
import {
  answered,
  askFile,
  attend,
  clearCache,
  contextLength,
  filesUnder,
  modelDir,
  promptTokens,
  recordEvents,
  withSetting,
  writeFile,
} from './helpers';

/** A document of about `lines` short lines, so prefill takes several chunks. */
function longText(lines: number): string {
  return Array.from({ length: lines }, (_, i) => `Entry ${i}: the keeper logged ${i % 7} ships at dusk.`).join('\n');
}

/** Files of the KV store (the weight-digest memo beside them is not cache content). */
function kvFiles(dir: string): string[] {
  return filesUnder(dir).filter((f) => path.basename(f) !== 'weights-digest.json');
}

describe('cancellation', function () {
  this.timeout(120_000);
  let api: AttendApi;
  before(async () => {
    api = (await attend()).api;
  });

  it('Attend: Cancel Question stops a running ask (sent at its first computed prefill chunk); the next ask still works', async () => {
    // Several prefill chunks (256 tokens each), and room left in the context for a long answer.
    const { ext } = await attend();
    const model = modelDir(ext.extensionPath);
    const context = contextLength(model);
    const question = 'How many ships?';
    let lines = 8;
    while (lines < 2000 && promptTokens(model, [{ path: 'long.txt', text: longText(lines) }], question) < Math.min(context * 0.4, 1200))
      lines += 8;
    const prompt = promptTokens(model, [{ path: 'long.txt', text: longText(lines) }], question);
    const maxNewTokens = Math.min(1024, context - prompt - 8);
    const uri = await writeFile('long.txt', longText(lines));
    const rec = recordEvents(api);
    let cancelledAt: { done: number; total: number } | null = null;
    // Cancel as soon as the engine reports computing the first chunk of the prompt.
    const sub = api.onDidAsk((e) => {
      if (cancelledAt === null && e.kind === 'progress' && e.phase === 'prefill' && e.done > e.reused) {
        cancelledAt = { done: e.done, total: e.total };
        void vscode.commands.executeCommand('attend.cancel');
      }
    });
    let o: AskOutcome;
    try {
      // A long answer budget so the ask cannot finish before the cancel arrives.
      o = await withSetting('maxNewTokens', maxNewTokens, () => askFile({ question, uri }));
    } finally {
      sub.dispose();
      rec.dispose();
    }
    assert.ok(
      cancelledAt,
      `prefill progress was reported (ask ${o.status}: ${o.error ?? ''}; events ${JSON.stringify(rec.of(o.askId).slice(0, 6))})`,
    );
    assert.equal(o.status, 'cancelled', `status ${o.status} ${o.error ?? ''}`);
    assert.equal(o.summary, null);
    const events = rec.of(o.askId);
    assert.deepEqual(events.at(-1), { kind: 'end', askId: o.askId, status: 'cancelled' });
    const generated = events.filter((e) => e.kind === 'token').length;
    assert.ok(generated < maxNewTokens, `stopped after ${generated} of ${maxNewTokens} tokens`);

    const next = answered(await askFile({ question, uri }));
    assert.ok(next.summary.generatedTokens > 0);
  });

  it('cancelling with nothing running is harmless', async () => {
    await vscode.commands.executeCommand('attend.cancel');
  });
});

describe('clear cache', function () {
  this.timeout(120_000);

  it('empties the on-disk KV cache and the next ask recomputes everything', async () => {
    const uri = await writeFile('cache-me.txt', longText(12));
    const q = 'What did the keeper log?';
    answered(await askFile({ question: q, uri }));
    const warm = answered(await askFile({ question: q, uri }));
    assert.ok(warm.summary.reusedTokens > 0, `a repeated ask reuses the cache (${warm.summary.reusedTokens} tokens)`);

    const r = await clearCache();
    assert.ok(r, 'clearCache returned its result');
    assert.equal(r.cleared, true);
    const cacheDir = r.cacheDir;
    assert.ok(cacheDir, 'the cache is a persistent folder (attend.cache.location or global storage)');
    assert.deepEqual(kvFiles(cacheDir), [], `no KV files left in ${cacheDir}`);

    const cold = answered(await askFile({ question: q, uri }));
    assert.equal(cold.summary.reusedTokens, 0, 'nothing reused after clearing');
    assert.equal(cold.summary.computedTokens, cold.summary.promptTokens);
    assert.equal(cold.meter.cachedTokens, 0, 'the meter no longer expects a cached prefix');
  });

  it('writes KV blocks to the cache folder while answering', async () => {
    const r = await clearCache();
    const uri = await writeFile('blocks.txt', longText(12));
    answered(await askFile({ question: 'Anything?', uri }));
    assert.ok(kvFiles(r!.cacheDir!).length > 0, `blocks written under ${r!.cacheDir}`);
  });
});
