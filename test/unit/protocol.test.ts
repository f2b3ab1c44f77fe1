import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  engineParamsGuards,
  engineResultGuards,
  isAskParams,
  isExtensionToWebviewMessage,
  isProgressNotification,
  isTokenNotification,
  isWebviewState,
  isWebviewToExtensionMessage,
  sameLoadParams,
  type AskResultWire,
  type MeterView,
  type WebviewState,
} from '../../engine/protocol';

test('webview -> extension commands: well-formed accepted, malformed rejected', () => {
  for (const ok of [
    { type: 'ready' },
    { type: 'revealPassage', askId: 'a1', index: 0 },
    { type: 'askAgain', question: 'why?' },
    { type: 'cancel', askId: 'a1' },
  ]) {
    assert.ok(isWebviewToExtensionMessage(ok), JSON.stringify(ok));
  }
  for (const bad of [
    null,
    'ready',
    [],
    {},
    { type: 'nope' },
    { type: 'revealPassage', askId: 'a1', index: -1 },
    { type: 'revealPassage', askId: 'a1', index: 1.5 },
    { type: 'revealPassage', askId: 3, index: 0 },
    { type: 'revealPassage', askId: 'x'.repeat(500), index: 0 },
    { type: 'askAgain' },
    { type: 'askAgain', question: 42 },
    { type: 'cancel' },
    { type: '__proto__' },
  ]) {
    assert.ok(!isWebviewToExtensionMessage(bad), JSON.stringify(bad));
  }
});

const meter: MeterView = {
  budget: 100,
  window: null,
  sinks: 4,
  frameTokens: 1,
  questionTokens: 2,
  answerReserve: 3,
  files: [{ path: 'a', tokens: 5, included: true, cached: 0 }],
  used: 11,
  cachedTokens: 0,
  toComputeTokens: 8,
  leftOut: [{ path: 'b.png', reason: 'binary', tokens: null }],
};

test('extension -> webview notifications are guarded too', () => {
  assert.ok(isExtensionToWebviewMessage({ type: 'meter', meter }));
  assert.ok(!isExtensionToWebviewMessage({ type: 'meter', meter: { ...meter, used: -1 } }));
  assert.ok(!isExtensionToWebviewMessage({ type: 'meter', meter: { ...meter, files: [{ path: 'a' }] } }));
  assert.ok(isExtensionToWebviewMessage({ type: 'answerToken', askId: 'a', index: 0, text: 'x' }));
  assert.ok(!isExtensionToWebviewMessage({ type: 'answerToken', askId: 'a', index: 0 }));
  assert.ok(
    isExtensionToWebviewMessage({
      type: 'passages',
      askId: 'a',
      passages: [{ index: 0, path: 'p', startLine: 0, endLine: 1, score: 0.5, snippet: '<b>' }],
    }),
  );
  assert.ok(!isExtensionToWebviewMessage({ type: 'passages', askId: 'a', passages: [{ index: 0, path: 'p' }] }));
  const summary = { stopReason: 'eos', promptTokens: 1, reusedTokens: 0, computedTokens: 1, generatedTokens: 1, prefillMs: 1, decodeMs: 1 };
  assert.ok(
    isExtensionToWebviewMessage({
      type: 'answerDone',
      askId: 'a',
      answer: 'x',
      sentences: [{ start: 0, end: 1, passages: [{ index: 0, weight: 1 }] }],
      summary,
    }),
  );
  assert.ok(
    !isExtensionToWebviewMessage({
      type: 'answerDone',
      askId: 'a',
      answer: 'x',
      sentences: [],
      summary: { ...summary, stopReason: 'bored' },
    }),
  );
  const done = (quote: unknown) => ({ type: 'answerDone', askId: 'a', answer: 'x', sentences: [], summary: { ...summary, quote } });
  assert.ok(isExtensionToWebviewMessage(done('on')));
  assert.ok(isExtensionToWebviewMessage(done('released')));
  assert.ok(!isExtensionToWebviewMessage(done('maybe')));
  assert.ok(!isExtensionToWebviewMessage(done(null)));
  const read = (reading: unknown) => ({ ...done('on'), summary: { ...summary, quote: 'on', reading } });
  assert.ok(isExtensionToWebviewMessage(read('memory')) && isExtensionToWebviewMessage(read('window')));
  assert.ok(isExtensionToWebviewMessage(read('passage')));
  assert.ok(!isExtensionToWebviewMessage(read('both')));
});

test('webview state read back is validated', () => {
  const s: WebviewState = {
    version: 1,
    askId: null,
    question: '',
    scope: '',
    answer: '',
    sentences: [],
    summary: null,
    passages: [],
    meter,
    error: null,
  };
  assert.ok(isWebviewState(s));
  assert.ok(!isWebviewState({ ...s, version: 2 }));
  assert.ok(!isWebviewState({ ...s, passages: 'x' }));
  assert.ok(!isWebviewState(undefined));
});

test('engine request params: ask', () => {
  const ok = { askId: 'a', docs: [{ path: 'x', text: 'y' }], question: 'q?', maxNewTokens: 8 };
  assert.ok(isAskParams(ok));
  assert.ok(isAskParams({ ...ok, temperature: 0.7, seed: 3, stop: ['\n\n'] }));
  assert.ok(isAskParams({ ...ok, quote: false }) && isAskParams({ ...ok, quote: true }));
  assert.ok(!isAskParams({ ...ok, quote: 'on' }), 'quote is a boolean');
  assert.ok(!isAskParams({ ...ok, askId: '' }));
  assert.ok(!isAskParams({ ...ok, question: '   ' }));
  assert.ok(!isAskParams({ ...ok, maxNewTokens: 0 }));
  assert.ok(
    !isAskParams({
      ...ok,
      docs: [
        { path: 'x', text: 'a' },
        { path: 'x', text: 'b' },
      ],
    }),
    'duplicate paths',
  );
  assert.ok(!isAskParams({ ...ok, docs: [{ path: 'x' }] }));
  assert.ok(!isAskParams({ ...ok, temperature: -1 }));
  assert.ok(!isAskParams({ ...ok, stop: [''] }));
  assert.ok(engineParamsGuards.load({ modelDir: '/m', window: null, sinks: 4, weights: false }));
  assert.ok(!engineParamsGuards.load({ modelDir: '', window: null, sinks: 4, weights: false }));
  assert.ok(!engineParamsGuards.load({ modelDir: '/m', window: 0, sinks: 4, weights: false }));
  const base = { modelDir: '/m', window: null, sinks: 4, weights: false };
  assert.ok(engineParamsGuards.load({ ...base, blockSize: 64, memoryTopK: 0, memoryLexicalWeight: 1.5 }));
  assert.ok(engineParamsGuards.load({ ...base, blockSize: 4096, memoryTopK: 64, memoryLexicalWeight: 0 }));
  assert.ok(engineParamsGuards.load({ ...base, memorySecondReading: false }));
  for (const bad of [
    { blockSize: 8 },
    { blockSize: 5000 },
    { blockSize: 64.5 },
    { memoryTopK: -1 },
    { memoryTopK: 65 },
    { memoryLexicalWeight: -1 },
    { memoryLexicalWeight: '2' },
    { memoryLexicalWeight: Infinity },
    { memorySecondReading: 'off' },
  ])
    assert.ok(!engineParamsGuards.load({ ...base, ...bad }), JSON.stringify(bad));
  assert.ok(sameLoadParams({ ...base, memoryTopK: 4 }, { ...base, memoryTopK: 4 }));
  assert.ok(!sameLoadParams({ ...base, memoryTopK: 4 }, { ...base, memoryTopK: 0 }));
  assert.ok(!sameLoadParams({ ...base, blockSize: 64 }, base));
  assert.ok(!sameLoadParams({ ...base, memoryLexicalWeight: 1 }, { ...base, memoryLexicalWeight: 2 }));
  assert.ok(!sameLoadParams({ ...base, memorySecondReading: false }, base));
  assert.ok(engineParamsGuards.countTokens({ docs: [], question: '' }));
  assert.ok(!engineParamsGuards.countTokens({ docs: {}, question: '' }));
});

test('engine notifications and results', () => {
  assert.ok(isProgressNotification({ askId: 'a', phase: 'prefill', done: 1, total: 2, reused: 0 }));
  assert.ok(!isProgressNotification({ askId: 'a', phase: 'warmup', done: 1, total: 2, reused: 0 }));
  assert.ok(isTokenNotification({ askId: 'a', index: 0, text: 'x', sources: [{ doc: 0, start: 0, end: 1, weight: 0.5 }] }));
  assert.ok(!isTokenNotification({ askId: 'a', index: 0, text: 'x', sources: [{ doc: 0, start: 0, end: 1, weight: NaN }] }));
  const result: AskResultWire = {
    askId: 'a',
    answer: 'x',
    stopReason: 'length',
    promptTokens: 3,
    reusedTokens: 0,
    computedTokens: 3,
    generatedTokens: 1,
    timings: { prefillMs: 1, firstTokenMs: 1, decodeMs: 1 },
    passages: [{ doc: 0, path: 'a', start: 0, end: 3, startLine: 0, endLine: 0, score: 1, supports: [0] }],
    tokens: [{ text: 'x', sources: [] }],
    quote: 'released',
  };
  assert.ok(engineResultGuards.ask(result));
  assert.ok(!engineResultGuards.ask({ ...result, quote: undefined }), 'the worker always says how the answer was decoded');
  assert.ok(!engineResultGuards.ask({ ...result, quote: 'partly' }));
  assert.ok(engineResultGuards.ask({ ...result, reading: 'memory' }), 'which of two readings answered');
  assert.ok(engineResultGuards.ask({ ...result, reading: 'passage' }));
  assert.ok(!engineResultGuards.ask({ ...result, reading: 'both' }));
  assert.ok(!engineResultGuards.ask({ ...result, timings: undefined }));
  assert.ok(!engineResultGuards.ask({ ...result, passages: [{ doc: 0 }] }));
  assert.ok(engineResultGuards.shutdown(null));
  assert.ok(engineResultGuards.clearCache({ cleared: true, cacheDir: null }));
  assert.ok(!engineResultGuards.clearCache({}));
});
