// Runs a mocha suite inside the extension host of code-server (real VS Code), for integration tests.
//
//   node out/test/e2e/run-in-code-server.js [options] [--tests <file|folder>]...
//     --extension <dir>   extension folder to install (default: the repo root, i.e. Attend; needs its
//                         build, dist/extension.js, and must call maybeRunTestEntry from activate())
//     --sample            shorthand: the sample extension and its tests (test/e2e/sample-extension*)
//     --workspace <dir>   folder to open (default: a fresh empty temp folder)
//     --tests <path>      test file, or folder (every *.test.js below); repeatable; compiled JS
//     --grep <re>         mocha grep
//     --timeout <s>       give up waiting for results after this long (default 180)
//     --copy              copy the extension instead of symlinking it
//     --setting <key>=<json>  user setting for the run (repeatable), e.g. --setting attend.maxNewTokens=24
//     --activate <title>  run this palette command once the workbench is up, to activate an extension that
//                         activates lazily (e.g. "Attend: Clear Highlights")
//     --check-lazy-host <s>  first wait this long WITHOUT a browser and check that no extension host
//                         started and no results appeared (proves a client connection is required)
//
// Mechanism: code-server has no --extensionTestsPath, so we set ATTEND_TEST_ENTRY (this repo's
// out/test/e2e/in-host/entry.js), ATTEND_TEST_RESULTS and ATTEND_TEST_FILES in code-server's environment;
// the extension host inherits them; the extension's maybeRunTestEntry() (extension/testEntry.ts)
// requires the entry after activation and it runs mocha there. The extension host only starts when a
// client connects, so we open the workbench once in Chromium, then wait for the results file.
// Exit code: 0 when every test passed and there was at least one; 1 otherwise (2 for usage errors).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  ensureCodeServer,
  launchBrowser,
  openWorkbench,
  repoRoot,
  resultsDir,
  runCommand,
  screenshot,
  startCodeServer,
  type CodeServer,
} from './harness';
import type { TestResults } from './in-host/entry';

interface Args {
  extension: string;
  workspace?: string;
  tests: string[];
  grep?: string;
  timeoutS: number;
  copy: boolean;
  checkLazyHostS: number;
  settings: Record<string, unknown>;
  activate?: string;
}

function parseArgs(argv: string[]): Args {
  const root = repoRoot();
  const a: Args = { extension: root, tests: [], timeoutS: 180, copy: false, checkLazyHostS: 0, settings: {} };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${arg} needs a value`);
      return v;
    };
    switch (arg) {
      case '--extension':
        a.extension = path.resolve(value());
        break;
      case '--workspace':
        a.workspace = path.resolve(value());
        break;
      case '--tests':
        a.tests.push(path.resolve(value()));
        break;
      case '--grep':
        a.grep = value();
        break;
      case '--timeout':
        a.timeoutS = Number(value());
        break;
      case '--copy':
        a.copy = true;
        break;
      case '--setting': {
        const v = value();
        const eq = v.indexOf('=');
        if (eq <= 0) usage(`--setting wants key=json, got ${v}`);
        try {
          a.settings[v.slice(0, eq)] = JSON.parse(v.slice(eq + 1));
        } catch {
          usage(`--setting ${v}: the value is not JSON`);
        }
        break;
      }
      case '--activate':
        a.activate = value();
        break;
      case '--check-lazy-host':
        a.checkLazyHostS = Number(value());
        break;
      case '--sample':
        a.extension = path.join(root, 'test', 'e2e', 'sample-extension');
        a.workspace ??= path.join(root, 'test', 'e2e', 'fixtures', 'sample-workspace');
        a.tests.push(path.join(root, 'out', 'test', 'e2e', 'sample-extension-tests'));
        break;
      default:
        usage(`unknown argument ${arg}`);
    }
  }
  if (a.tests.length === 0) usage('no --tests given');
  return a;
}

function usage(msg: string): never {
  console.error(`run-in-code-server: ${msg}\nsee the header of test/e2e/run-in-code-server.ts`);
  process.exit(2);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Prints new progress lines (mocha spec style) as the in-host suite writes them. */
class ProgressTail {
  private offset = 0;
  private rest = '';
  constructor(private readonly file: string) {}
  poll(): void {
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r');
    } catch {
      return;
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (size <= this.offset) return;
      const buf = Buffer.alloc(size - this.offset);
      fs.readSync(fd, buf, 0, buf.length, this.offset);
      this.offset = size;
      const lines = (this.rest + buf.toString('utf8')).split('\n');
      this.rest = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) this.print(JSON.parse(line) as Record<string, unknown>);
    } finally {
      fs.closeSync(fd);
    }
  }
  private failures = 0;
  private print(e: Record<string, unknown>): void {
    switch (e.event) {
      case 'start':
        console.log(
          `  (in the extension host: node ${String(e.node)}, mocha loaded via ${String(e.mocha)}, ${(e.files as string[]).length} file(s))\n`,
        );
        break;
      case 'pass':
        console.log(`  ✔ ${String(e.fullTitle)} (${String(e.durationMs)}ms)`);
        break;
      case 'fail':
        console.log(`  ${++this.failures}) ${String(e.fullTitle)}`);
        break;
      case 'pending':
        console.log(`  - ${String(e.fullTitle)}`);
        break;
      default:
        break;
    }
  }
}

function printSummary(r: TestResults): void {
  console.log('');
  console.log(`  ${r.passed} passing (${Math.round(r.durationMs)}ms)`);
  if (r.pending) console.log(`  ${r.pending} pending`);
  if (r.failed) console.log(`  ${r.failed} failing`);
  r.failures.forEach((f, i) => {
    console.log(`\n  ${i + 1}) ${f.fullTitle}:\n     ${(f.stack ?? f.error).split('\n').join('\n     ')}`);
  });
  console.log('');
}

function extensionHostLaunches(server: CodeServer): number {
  const log = fs.readFileSync(server.logFile, 'utf8');
  return (log.match(/Launched Extension Host Process/g) ?? []).length;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const root = repoRoot();
  ensureCodeServer();
  const entry = path.join(root, 'out', 'test', 'e2e', 'in-host', 'entry.js');
  if (!fs.existsSync(entry)) usage(`${entry} missing: compile first (npx tsc -p .)`);
  for (const t of args.tests) if (!fs.existsSync(t)) usage(`${t} missing: compile first (npx tsc -p .)`);

  const stamp = `${Date.now()}-${process.pid}`;
  const resultsFile = path.join(resultsDir('integration'), `results-${stamp}.json`);
  const progressFile = `${resultsFile}.progress`;
  let tempWorkspace: string | undefined;
  const workspace = args.workspace ?? (tempWorkspace = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-ws-')));

  const t0 = Date.now();
  const server = await startCodeServer({
    workspace,
    extensionDir: args.extension,
    extensionMode: args.copy ? 'copy' : 'link',
    logName: 'integration',
    userSettings: args.settings,
    env: {
      ATTEND_TEST_ENTRY: entry,
      ATTEND_TEST_RESULTS: resultsFile,
      ATTEND_TEST_FILES: args.tests.join(path.delimiter),
      ATTEND_TEST_GREP: args.grep,
    },
  });
  console.log(
    `code-server up in ${server.startupMs}ms on ${server.baseUrl} (extension ${server.extensionId}; log ${path.relative(root, server.logFile)})`,
  );
  let browser: Awaited<ReturnType<typeof launchBrowser>> | undefined;
  try {
    if (args.checkLazyHostS > 0) {
      await sleep(args.checkLazyHostS * 1000);
      const hosts = extensionHostLaunches(server);
      const ran = fs.existsSync(progressFile) || fs.existsSync(resultsFile);
      console.log(
        `lazy-host check: after ${args.checkLazyHostS}s with no client: ${hosts} extension host(s) launched, tests ${ran ? 'RAN' : 'did not run'}`,
      );
      if (hosts > 0 || ran) throw new Error('the extension host started without a client; the runner assumptions are wrong');
    }
    browser = await launchBrowser();
    const consoleErrors: string[] = [];
    const page = await openWorkbench(browser, server, { consoleErrors });
    if (args.activate) await runCommand(page, args.activate);
    console.log(`workbench loaded ${Date.now() - t0}ms after start; waiting for results (timeout ${args.timeoutS}s)\n`);

    const tail = new ProgressTail(progressFile);
    const deadline = Date.now() + args.timeoutS * 1000;
    while (!fs.existsSync(resultsFile) && Date.now() < deadline) {
      tail.poll();
      await sleep(200);
    }
    tail.poll();
    if (!fs.existsSync(resultsFile)) {
      const shot = await screenshot(page, `integration-timeout-${stamp}`);
      console.error(`\nno results after ${args.timeoutS}s (extension hosts launched: ${extensionHostLaunches(server)}).`);
      console.error(
        `Does the extension call maybeRunTestEntry() in activate(), and does it activate? Screenshot ${shot}; log ${server.logFile}`,
      );
      if (consoleErrors.length) console.error('browser console errors:\n  ' + consoleErrors.slice(-10).join('\n  '));
      return 1;
    }
    const results = JSON.parse(fs.readFileSync(resultsFile, 'utf8')) as TestResults;
    printSummary(results);
    if (results.failed > 0) {
      await screenshot(page, `integration-failure-${stamp}`);
      return 1;
    }
    if (results.total === 0 || results.passed === 0) {
      console.error('no tests ran: failing the run (check --tests paths and --grep)');
      return 1;
    }
    console.log(`total ${Date.now() - t0}ms; results ${path.relative(root, resultsFile)}`);
    return 0;
  } finally {
    await browser?.close();
    await server.stop();
    if (tempWorkspace) fs.rmSync(tempWorkspace, { recursive: true, force: true });
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
