// Browser end to end: Chromium (playwright-core) drives real VS Code (code-server) with Attend installed, the way a
// person would: open the fixture workspace, run "Attend: Ask About Workspace" from the command palette, type a
// question, watch the answer stream into the panel, read the status-bar meter, hover a highlighted passage.
//
//   npx mocha --timeout 120000 out/test/e2e/attend.e2e.js       (after npx tsc -p . and node tools/build.mjs)
//   ATTEND_E2E_EXTENSION=<dir>  the installed extension folder (default: the repo root; CI uses the unpacked .vsix)
//   ATTEND_E2E_MEDIA=1          also write the README screenshots media/screenshot-answer.png, media/screenshot-hover.png
//   HEADED=1                    watch it
// Screenshots: test-results/screenshots/e2e-*.png. With the generated fixture model the answer is random text, so
// only structure and numbers are checked.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, before, describe, it } from 'mocha';
import type { Browser, Frame, Page } from 'playwright-core';
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
  waitForStatusBarText,
  webviewFrame,
  type CodeServer,
} from './harness';
import { modelSettings, sampleWorkspace } from './attend-setup';
import { loadTokenizer } from '../../engine/tokenizer';
import { loadChatTemplate, renderChat } from '../../engine/chat';
import { assemblePrompt, frameFromTemplate } from '../../engine/prompt';
import { formatTokens } from '../../extension/meter';

const QUESTION = 'Who rowed out to save the crew of the Alder?';
const MAX_NEW_TOKENS = 32;

type Win = { document: { body: { innerText: string } | null; querySelectorAll(s: string): ArrayLike<{ textContent: string | null }> } };

function promptTokens(model: string, docs: { path: string; text: string }[], question: string): number {
  const template = loadChatTemplate(model);
  const frame = frameFromTemplate(
    template ? (c) => renderChat(template, [{ role: 'user', content: c }], { addGenerationPrompt: true }) : null,
  );
  return assemblePrompt(loadTokenizer(model), frame, docs, question).ids.length;
}

describe('Attend in the browser (code-server + Chromium)', function () {
  this.timeout(120_000);
  const root = repoRoot();
  const extensionDir = process.env.ATTEND_E2E_EXTENSION ?? root;
  const model = modelSettings(extensionDir);
  let workspace: string;
  let server: CodeServer;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];

  before(async () => {
    ensureCodeServer();
    workspace = sampleWorkspace(fs.mkdtempSync(path.join(os.tmpdir(), 'attend-e2e-')));
    server = await startCodeServer({
      workspace,
      extensionDir,
      extensionMode: 'copy',
      logName: 'e2e',
      userSettings: {
        ...model.settings,
        'attend.maxNewTokens': MAX_NEW_TOKENS,
        // A window shorter than the prompt, so the meter draws it (and the sliding-window path runs).
        'attend.window': 512,
        'workbench.colorTheme': 'Default Dark Modern',
      },
    });
    browser = await launchBrowser();
    page = await openWorkbench(browser, server, { consoleErrors, viewport: { width: 1440, height: 900 } });
  });

  afterEach(async function () {
    if (page && this.currentTest?.state === 'failed') {
      const shot = await screenshot(page, `e2e-failure-${this.currentTest.title.slice(0, 40)}`).catch(() => '');
      console.log(`      screenshot ${shot}; code-server log ${server.logFile}`);
    }
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (workspace) fs.rmSync(path.dirname(workspace), { recursive: true, force: true });
  });

  let panel: Frame;
  let sawStreaming = false;
  let firstPassage = '';

  it('asks about the workspace from the command palette and streams the answer into the panel', async () => {
    // With a file open the panel opens beside it, where the passages get highlighted.
    await openFile(page, 'lighthouse.md');
    await runCommand(page, 'Attend: Ask About Workspace');
    const input = page.locator('.quick-input-widget .quick-input-box input');
    await input.waitFor({ state: 'visible' });
    await page.locator('.quick-input-widget', { hasText: 'Your question' }).waitFor({ state: 'visible' });
    await input.fill(QUESTION);
    await page.keyboard.press('Enter');

    // The question is echoed into the panel's "ask again" box (an <input>, so not part of the page text).
    panel = await webviewFrame(page, { selector: '.ask-again input', timeoutMs: 30_000 });
    assert.equal(await panel.locator('.ask-again input').inputValue(), QUESTION);
    // While it runs: the live answer (.streaming) and a Cancel button; then the summary line.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const state = await panel.evaluate(() => {
        const doc = (globalThis as unknown as Win).document;
        return {
          streaming: doc.querySelectorAll('.answer .streaming').length > 0,
          summary: doc.querySelectorAll('.summary')[0]?.textContent ?? '',
        };
      });
      sawStreaming ||= state.streaming;
      if (/generated/.test(state.summary)) break;
      assert.ok(Date.now() < deadline, 'the answer finished within 60 s');
      await new Promise((r) => setTimeout(r, 25));
    }
    const body = await panel.evaluate(() => (globalThis as unknown as Win).document.body?.innerText ?? '');
    assert.match(body, /workspace attend-e2e-\w+ \(\d+ files\)|workspace \S+ \(\d+ files\)/, 'names the scope');
    const summary = /([\d,]+) prompt tokens · ([\d,]+) reused from cache · ([\d,]+) computed · ([\d,]+) generated/.exec(body);
    assert.ok(summary, `summary line in ${body}`);
    const [prompt, reused, computed, generated] = summary.slice(1).map((s) => Number(s.replace(/,/g, '')));
    // With the window shorter than the prompt, block memory runs the question a second time to probe stored blocks,
    // and the engine counts that as computed too (engine/engine.ts AskResult.computedTokens).
    assert.ok(reused + computed >= prompt, `${reused} reused + ${computed} computed cover the ${prompt} prompt tokens`);
    assert.ok(computed <= prompt + 64, `${computed} computed: at most the prompt plus a second pass of the question`);
    assert.ok(generated > 0 && generated <= MAX_NEW_TOKENS, `${generated} tokens generated`);
    // The built-in model quotes its answers by default (attend_quote_answers), a model without the key does not.
    const quotes = 'attend_quote_answers' in (JSON.parse(fs.readFileSync(path.join(model.dir, 'config.json'), 'utf8')) as object);
    const quoteNote = /quoted from the documents|not a verbatim quote/.test(body);
    assert.equal(quoteNote, quotes, `the summary says how the answer was decoded (quotes: ${quotes}): ${body}`);
    const answer = await panel.evaluate(() => (globalThis as unknown as Win).document.querySelectorAll('.answer')[0]?.textContent ?? '');
    assert.ok(answer.length > 0, 'the answer is shown');
    assert.match(body, /Context [\d.]+k? \/ [\d.]+k? tokens/i, 'the meter in the panel');
    assert.match(body, /Passages/i);
    firstPassage = await panel.evaluate(
      () => (globalThis as unknown as Win).document.querySelectorAll('.passage .path')[0]?.textContent ?? '',
    );
    await screenshot(page, 'e2e-answer');
    if (process.env.ATTEND_E2E_MEDIA === '1') await page.screenshot({ path: path.join(root, 'media', 'screenshot-answer.png') });
    console.log(`      (live answer element seen while streaming: ${sawStreaming})`);
  });

  it('shows the context meter of the open file in the status bar, equal to the engine count (once activated)', async () => {
    // lighthouse.md is still the active editor: the panel opened beside it without taking focus.
    const text = fs.readFileSync(path.join(workspace, 'lighthouse.md'), 'utf8');
    const used = promptTokens(model.dir, [{ path: 'lighthouse.md', text }], '') + MAX_NEW_TOKENS;
    const budget = (JSON.parse(fs.readFileSync(path.join(model.dir, 'config.json'), 'utf8')) as { max_position_embeddings: number })
      .max_position_embeddings;
    const shown = await waitForStatusBarText(page, 'attend.meter', /^Attend /, 30_000);
    assert.ok(shown.startsWith(`Attend ${formatTokens(used)} / ${formatTokens(budget)}`), `status bar "${shown}" vs ${used} / ${budget}`);
  });

  it('lists ranked passages whose file and lines are highlighted in the editor, with a hover', async () => {
    const m = /^(.+):(\d+)(?:-(\d+))?$/.exec(firstPassage);
    assert.ok(m, `first passage "${firstPassage}"`);
    const [, file, startLine] = m;
    await openFile(page, file);
    // Whole-line decorations render as view overlays with a generated class; the theme colour is the background.
    const decorated = page.locator('.editor-instance .monaco-editor .view-overlays div[class*="ced-"]');
    await decorated.first().waitFor({ state: 'attached', timeout: 10_000 });
    assert.ok((await decorated.count()) > 0, 'passage lines are decorated');

    await hoverAt(page, Number(startLine), 2);
    const hover = await hoverText(page);
    assert.match(hover, /Attend passage 1 · score [\d.]+% · lines \d+–\d+/);
    assert.match(hover, /Open the answer panel/);
    await screenshot(page, 'e2e-hover');
    if (process.env.ATTEND_E2E_MEDIA === '1') await page.screenshot({ path: path.join(root, 'media', 'screenshot-hover.png') });
  });

  it('logged no extension errors in the browser console', () => {
    const ours = consoleErrors.filter((e) => /attend/i.test(e));
    assert.deepEqual(ours, []);
  });
});
