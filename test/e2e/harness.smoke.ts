// Proves the code-server harness works end to end with the throwaway sample extension.
// Not a unit test (tools/test.mjs does not pick it up). Run after `npx tsc -p .`:
//   node out/test/e2e/harness.smoke.js [--runs N]
// Screenshots: test-results/screenshots/smoke-*.png; code-server log: test-results/code-server/.
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import {
  ensureCodeServer,
  hoverAt,
  hoverText,
  launchBrowser,
  openFile,
  openWorkbench,
  repoRoot,
  runCommand,
  screenshot,
  startCodeServer,
  statusBarText,
  waitForStatusBarText,
  webviewText,
} from './harness';

const root = repoRoot();
const SAMPLE = path.join(root, 'test', 'e2e', 'sample-extension');
const WORKSPACE = path.join(root, 'test', 'e2e', 'fixtures', 'sample-workspace');

async function once(run: number): Promise<Record<string, number>> {
  const t: Record<string, number> = {};
  let mark = Date.now();
  const lap = (name: string) => {
    const now = Date.now();
    t[name] = now - mark;
    mark = now;
  };

  const server = await startCodeServer({ workspace: WORKSPACE, extensionDir: SAMPLE, logName: `smoke-${run}` });
  lap('codeServerStart');
  const browser = await launchBrowser();
  lap('browserLaunch');
  const consoleErrors: string[] = [];
  try {
    const page = await openWorkbench(browser, server, { consoleErrors });
    lap('workbenchLoad');
    // The sample activates onStartupFinished and then shows its status item.
    assert.equal(await statusBarText(page, 'sample.status'), 'Sample: idle');
    lap('extensionActive');

    await runCommand(page, 'Sample: Hello');
    await waitForStatusBarText(page, 'sample.status', 'Sample: ready');
    lap('paletteRoundTrip');

    const text = await webviewText(page, { text: 'Hello from the sample webview' });
    assert.match(text, /Hello from the sample webview/);
    assert.match(text, /webview body/);
    lap('webview');
    await screenshot(page, `smoke-${run}-webview`);

    await openFile(page, 'hello.txt');
    lap('openFile');
    await hoverAt(page, 2, 3); // "Attend" on line 2
    const hover = await hoverText(page);
    assert.match(hover, /Sample hover: Attend/);
    lap('hover');

    const shot = await screenshot(page, `smoke-${run}`);
    lap('screenshot');
    console.log(`run ${run}: ok  screenshot ${path.relative(root, shot)}  log ${path.relative(root, server.logFile)}`);
    return t;
  } catch (err) {
    for (const page of browser.contexts().flatMap((c) => c.pages())) await screenshot(page, `smoke-${run}-failure`).catch(() => undefined);
    console.error(`run ${run}: FAILED; log ${server.logFile}`);
    if (consoleErrors.length) console.error('browser console errors:\n  ' + consoleErrors.slice(-10).join('\n  '));
    throw err;
  } finally {
    await browser.close();
    await server.stop();
  }
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--runs');
  const runs = i > 0 ? Number(process.argv[i + 1]) : 1;
  ensureCodeServer();
  const all: Record<string, number>[] = [];
  for (let r = 1; r <= runs; r++) {
    const t0 = Date.now();
    const t = await once(r);
    t.total = Date.now() - t0;
    all.push(t);
    console.log(
      '  ' +
        Object.entries(t)
          .map(([k, v]) => `${k}=${v}ms`)
          .join(' '),
    );
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
