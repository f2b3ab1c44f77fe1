// The test-only entry that runs a mocha suite INSIDE the VS Code extension host, with the real `vscode`
// API. code-server has no --extensionTestsPath, so the extension under test loads this file itself:
//
//   ATTEND_TEST_ENTRY=<abs path of out/test/e2e/in-host/entry.js>   (extension/testEntry.ts requires it
//                                                                    after activation and calls run())
//   ATTEND_TEST_RESULTS=<file>   JSON results written here when the run ends (TestResults below)
//                                progress (one JSON object a line) is appended to <file>.progress as it runs
//   ATTEND_TEST_FILES=<paths>    test files or folders (folders: every *.test.js below), path.delimiter-separated
//   ATTEND_TEST_GREP=<regexp>    optional mocha grep
//   ATTEND_TEST_TIMEOUT=<ms>     optional per-test timeout (default 20000)
//
// test/e2e/run-in-code-server.ts sets these, opens the workbench (the extension host only starts once a
// client connects) and waits for the results file.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type MochaType from 'mocha';

export interface RunOptions {
  /** The extension's own `vscode` module: test files' require('vscode') then returns it (otherwise
   *  files outside the extension's folder get VS Code's default API object, with a warning logged). */
  vscode?: unknown;
  /** The extension's ExtensionContext, exposed to tests as testContext(). */
  context?: unknown;
  resultsFile?: string;
  files?: string[];
  grep?: string;
  timeoutMs?: number;
}

export interface TestFailure {
  title: string;
  fullTitle: string;
  error: string;
  stack?: string;
}

export interface TestResults {
  passed: number;
  failed: number;
  pending: number;
  total: number;
  durationMs: number;
  failures: TestFailure[];
  tests: { fullTitle: string; state: 'passed' | 'failed' | 'pending'; durationMs?: number }[];
  /** How mocha was loaded ('mocha' = the package entry via require(esm); or the CJS build's path). */
  mocha?: string;
  node?: string;
  vscodeVersion?: string;
}

const load = createRequire(__filename);
let current: RunOptions | undefined;

/** The ExtensionContext passed in by the extension under test (for tests that need storage paths etc.). */
export function testContext<T = unknown>(): T {
  if (!current?.context) throw new Error('testContext(): not running inside ATTEND_TEST_ENTRY');
  return current.context as T;
}

type MochaCtor = typeof MochaType;

/** mocha 12 is an ES module package; Node >= 20.19 can require() it. Fall back to its CJS build. */
function loadMocha(): { Mocha: MochaCtor; via: string } {
  try {
    const ns = load('mocha') as { default?: MochaCtor } & MochaCtor;
    const Mocha = typeof ns.default === 'function' ? ns.default : ns;
    if (typeof Mocha === 'function') return { Mocha, via: 'mocha' };
  } catch (err) {
    console.warn('[attend-test-entry] require("mocha") failed, trying mocha/lib/mocha.cjs:', err);
  }
  return { Mocha: load('mocha/lib/mocha.cjs') as MochaCtor, via: 'mocha/lib/mocha.cjs' };
}

/** Files are taken as given; folders contribute every *.test.js below them (sorted). */
function expandFiles(specs: string[]): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    for (const name of fs.readdirSync(p).sort()) {
      const q = path.join(p, name);
      if (fs.statSync(q).isDirectory()) walk(q);
      else if (name.endsWith('.test.js')) out.push(q);
    }
  };
  for (const s of specs) {
    const p = path.resolve(s);
    if (fs.statSync(p).isDirectory()) walk(p);
    else out.push(p);
  }
  return out;
}

function writeAtomic(file: string, data: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

type ModuleInternals = { _load: (request: string, parent: unknown, isMain: boolean) => unknown };

/** Routes require('vscode') to the given API object while the suite runs; returns the undo. */
function routeVscode(api: unknown): () => void {
  const Module = load('node:module') as ModuleInternals;
  const original = Module._load;
  Module._load = function (this: unknown, request: string, parent: unknown, isMain: boolean) {
    if (request === 'vscode') return api;
    return original.call(this, request, parent, isMain);
  };
  return () => {
    Module._load = original;
  };
}

/** Runs the suite and writes the results file. Never throws: failures to load end up in the results. */
export async function run(opts: RunOptions = {}): Promise<TestResults> {
  current = opts;
  const resultsFile = opts.resultsFile ?? process.env.ATTEND_TEST_RESULTS;
  const progressFile = resultsFile ? `${resultsFile}.progress` : undefined;
  const progress = (event: Record<string, unknown>) => {
    if (progressFile) fs.appendFileSync(progressFile, JSON.stringify(event) + '\n');
  };
  const t0 = Date.now();
  const results: TestResults = { passed: 0, failed: 0, pending: 0, total: 0, durationMs: 0, failures: [], tests: [] };
  results.node = process.version;
  const api = opts.vscode as { version?: string } | undefined;
  if (api?.version) results.vscodeVersion = api.version;

  const undo = opts.vscode ? routeVscode(opts.vscode) : () => undefined;
  try {
    const { Mocha, via } = loadMocha();
    results.mocha = via;
    const specs = opts.files ?? (process.env.ATTEND_TEST_FILES ?? '').split(path.delimiter).filter(Boolean);
    const files = expandFiles(specs);
    progress({ event: 'start', files, mocha: via, node: process.version });
    const grep = opts.grep ?? process.env.ATTEND_TEST_GREP;
    const mocha = new Mocha({
      ui: 'bdd',
      color: false,
      reporter: 'spec',
      timeout: opts.timeoutMs ?? Number(process.env.ATTEND_TEST_TIMEOUT ?? 20000),
      ...(grep ? { grep } : {}),
    });
    for (const f of files) mocha.addFile(f);
    await mocha.loadFilesAsync();
    await new Promise<void>((resolve) => {
      const runner = mocha.run(() => resolve());
      runner.on('pass', (test) => {
        results.passed++;
        results.tests.push({ fullTitle: test.fullTitle(), state: 'passed', durationMs: test.duration ?? 0 });
        progress({ event: 'pass', fullTitle: test.fullTitle(), title: test.title, durationMs: test.duration ?? 0 });
      });
      runner.on('fail', (test, err: Error) => {
        results.failed++;
        const failure: TestFailure = { title: test.title, fullTitle: test.fullTitle(), error: String(err?.message ?? err) };
        if (err?.stack) failure.stack = err.stack;
        results.failures.push(failure);
        results.tests.push({ fullTitle: test.fullTitle(), state: 'failed', durationMs: test.duration ?? 0 });
        progress({ event: 'fail', ...failure });
      });
      runner.on('pending', (test) => {
        results.pending++;
        results.tests.push({ fullTitle: test.fullTitle(), state: 'pending' });
        progress({ event: 'pending', fullTitle: test.fullTitle(), title: test.title });
      });
    });
  } catch (err) {
    const e = err as Error;
    results.failed++;
    results.failures.push({ title: 'load', fullTitle: 'loading the test suite', error: String(e?.message ?? e), stack: e?.stack ?? '' });
    progress({ event: 'fail', fullTitle: 'loading the test suite', error: String(e?.stack ?? e) });
  } finally {
    undo();
  }
  results.total = results.passed + results.failed + results.pending;
  results.durationMs = Date.now() - t0;
  progress({ event: 'end', passed: results.passed, failed: results.failed, pending: results.pending });
  if (resultsFile) writeAtomic(resultsFile, JSON.stringify(results, null, 2));
  return results;
}
