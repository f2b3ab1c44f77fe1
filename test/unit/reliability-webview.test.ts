// Reliability: hostile documents in the answer panel, in a real browser. The page is exactly the HTML the extension
// gives its webview (AnswerPanel built against a stand-in `vscode` module: its CSP, nonce and script tag), the script
// is the built bundle dist/webview/main.js, `acquireVsCodeApi` is a stub, and the protocol messages carry HTML/JS/CSS
// payloads and bidi controls in document text, file names, the question and the answer. Asserted: no payload script
// runs (window.__pwned, a page binding), no payload element exists, nothing is fetched from the payloads' hosts, the
// text is shown as text, untrusted text is bidi-isolated, and the CSP blocks inline and remote scripts.
// Needs Chromium at /usr/bin/chromium (CI installs it: apt-get install chromium); without it the tests are skipped
// with that reason printed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import type { Browser, Page } from 'playwright-core';
import type { ExtensionToWebviewMessage, WebviewToExtensionMessage } from '../../engine/protocol';
// The module system itself (to stand in for `vscode`, which only exists inside the editor).
const Module = createRequire(__filename)('node:module') as typeof import('node:module');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const CHROMIUM = '/usr/bin/chromium';
const BUNDLE = path.join(ROOT, 'dist', 'webview', 'main.js');
const ORIGIN = 'https://attend-webview.test';
const skip = fs.existsSync(CHROMIUM) ? false : `Chromium not found at ${CHROMIUM} (CI installs it; apt-get install chromium)`;
if (skip) process.stdout.write(`# reliability-webview skipped: ${skip}\n`);

const PWN = "window.__pwned=(window.__pwned||0)+1;window.__pwnBinding&&window.__pwnBinding('ran')";
/** One string with every payload kind; it goes into every untrusted field. */
const PAYLOAD = [
  `<img src="https://evil.test/img.png" onerror="${PWN}">`,
  `</script><script>${PWN}</script>`,
  `<a id="pwn-link" href="javascript:${PWN}">click</a>`,
  `<style>body{background:url(https://evil.test/css.png)}</style>`,
  `<svg onload="${PWN}"><iframe src="https://evil.test/frame"></iframe>`,
  `" onmouseover="${PWN}" x="`,
  `\u202Egnp.exe\u202C \u2066isolated\u2069 \u200F`,
].join(' ');

/** The panel's HTML and its command handler, from extension/panel.ts run against a stand-in `vscode`. */
async function panelHost(): Promise<{ html: string; receive: (raw: unknown) => void; commands: WebviewToExtensionMessage[] }> {
  const moduleWithLoad = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
  const realLoad = moduleWithLoad._load;
  let receive: (raw: unknown) => void = () => undefined;
  const webview = {
    options: {},
    html: '',
    cspSource: ORIGIN,
    asWebviewUri: (u: { path: string }) => ({ toString: () => `${ORIGIN}${u.path}` }),
    onDidReceiveMessage: (fn: (raw: unknown) => void) => {
      receive = fn;
      return { dispose: () => undefined };
    },
    postMessage: () => Promise.resolve(true),
  };
  const fake = {
    Uri: { joinPath: (base: { path: string }, ...parts: string[]) => ({ path: [base.path, ...parts].join('/') }) },
    ViewColumn: { Beside: -2 },
    window: {
      createWebviewPanel: () => ({
        webview,
        iconPath: undefined,
        onDidDispose: () => ({ dispose: () => undefined }),
        reveal: () => undefined,
        dispose: () => undefined,
      }),
    },
  };
  moduleWithLoad._load = function (request: string, ...rest: unknown[]) {
    return request === 'vscode' ? fake : realLoad.call(this, request, ...rest);
  };
  try {
    const { AnswerPanel } = await import('../../extension/panel');
    const commands: WebviewToExtensionMessage[] = [];
    AnswerPanel.show({ path: '/ext' } as never, (m) => commands.push(m));
    return { html: webview.html, receive, commands };
  } finally {
    moduleWithLoad._load = realLoad;
  }
}

const STUB_API = `
  window.__posted = [];
  window.__state = undefined;
  window.acquireVsCodeApi = () => ({
    postMessage: (m) => window.__posted.push(m),
    getState: () => window.__state,
    setState: (s) => { window.__state = s; },
  });
`;

function messages(): ExtensionToWebviewMessage[] {
  const meter = {
    budget: 4096,
    window: 1024,
    sinks: 4,
    frameTokens: 10,
    questionTokens: 12,
    answerReserve: 256,
    files: [
      { path: PAYLOAD, tokens: 3000, included: true, cached: 1000 },
      { path: `big ${PAYLOAD}`, tokens: 9000, included: false, cached: 0 },
    ],
    used: 3278,
    cachedTokens: 1000,
    toComputeTokens: 2278,
    leftOut: [{ path: PAYLOAD, reason: `over the token budget ${PAYLOAD}`, tokens: 9000 }],
  };
  const answer = `Answer ${PAYLOAD}. Second sentence.`;
  return [
    { type: 'answerStart', askId: 'a1', question: `Q ${PAYLOAD}`, scope: `workspace ${PAYLOAD}` },
    { type: 'meter', meter },
    { type: 'answerProgress', askId: 'a1', label: `prefill ${PAYLOAD}` },
    { type: 'answerToken', askId: 'a1', index: 0, text: answer.slice(0, 40) },
    { type: 'answerToken', askId: 'a1', index: 1, text: answer.slice(40) },
    {
      type: 'passages',
      askId: 'a1',
      passages: [
        { index: 0, path: PAYLOAD, startLine: 0, endLine: 2, score: 0.7, snippet: `line one ${PAYLOAD}\nline two` },
        { index: 1, path: `second ${PAYLOAD}`, startLine: 5, endLine: 5, score: 0.3, snippet: PAYLOAD },
      ],
    },
    {
      type: 'answerDone',
      askId: 'a1',
      answer,
      sentences: [
        { start: 0, end: answer.indexOf('Second'), passages: [{ index: 0, weight: 1 }] },
        { start: answer.indexOf('Second'), end: answer.length, passages: [] },
      ],
      summary: {
        stopReason: 'eos',
        promptTokens: 3278,
        reusedTokens: 1000,
        computedTokens: 2278,
        generatedTokens: 20,
        prefillMs: 1200,
        decodeMs: 300,
      },
    },
    // And an error whose message carries the payload (as an engine error quoting a file name would).
    { type: 'answerStart', askId: 'a2', question: PAYLOAD, scope: PAYLOAD },
    { type: 'answerError', askId: 'a2', message: `${PAYLOAD}: not a model folder` },
  ];
}

let browser: Browser | null = null;
let host: Awaited<ReturnType<typeof panelHost>>;
before(async () => {
  if (skip) return;
  if (!fs.existsSync(BUNDLE)) execFileSync(process.execPath, [path.join(ROOT, 'tools', 'build.mjs')], { cwd: ROOT, stdio: 'inherit' });
  host = await panelHost();
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});
after(async () => {
  await browser?.close();
});

interface Loaded {
  readonly page: Page;
  readonly evilRequests: string[];
  readonly pwnCalls: string[];
  readonly violations: string[];
}

/** Opens the panel page (with or without its CSP) and delivers the protocol messages. */
async function openPanel(html: string): Promise<Loaded> {
  const page = await browser!.newPage();
  page.setDefaultTimeout(15_000);
  const evilRequests: string[] = [];
  const pwnCalls: string[] = [];
  const violations: string[] = [];
  await page.exposeBinding('__pwnBinding', (_src, what: string) => void pwnCalls.push(what));
  await page.addInitScript(STUB_API);
  await page.addInitScript(`
    window.__violations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));
  `);
  await page.route('**/*', async (route) => {
    const url = new URL(route.request().url());
    if (url.origin === ORIGIN && url.pathname === '/index.html') return route.fulfill({ contentType: 'text/html', body: html });
    if (url.origin === ORIGIN && url.pathname === '/ext/dist/webview/main.js')
      return route.fulfill({ contentType: 'text/javascript', body: fs.readFileSync(BUNDLE) });
    if (url.origin === ORIGIN && url.pathname === '/ext/media/panel.css')
      return route.fulfill({ contentType: 'text/css', body: fs.readFileSync(path.join(ROOT, 'media', 'panel.css')) });
    evilRequests.push(url.href);
    return route.fulfill({ status: 404, body: '' });
  });
  await page.goto(`${ORIGIN}/index.html`);
  await page.waitForFunction(`window.__posted.some((m) => m.type === 'ready')`);
  await post(page, messages());
  // Let images, frames and handlers have their chance to fire; hover and focus everything.
  await page.waitForTimeout(300);
  for (const sel of ['.sentence', '.passage', '.path']) {
    for (const h of (await page.$$(sel)).slice(0, 3)) await h.hover({ timeout: 500 }).catch(() => undefined);
  }
  await page.waitForTimeout(100);
  violations.push(...(await inPage<string[]>(page, 'window.__violations')));
  return { page, evilRequests, pwnCalls, violations };
}

/** Evaluates `expr` in the page (a string: this project's type-check has no DOM library). */
function inPage<T>(page: Page, expr: string): Promise<T> {
  return page.evaluate(expr) as Promise<T>;
}

async function post(page: Page, msgs: readonly ExtensionToWebviewMessage[]): Promise<void> {
  for (const m of msgs) await inPage(page, `window.postMessage(${JSON.stringify(m)}, '*')`);
}

async function assertInert(l: Loaded, label: string): Promise<void> {
  const { page } = l;
  assert.equal(await inPage(page, 'window.__pwned'), undefined, `${label}: a payload script ran`);
  assert.deepEqual(l.pwnCalls, [], `${label}: a payload called the binding`);
  const found = await inPage<string[]>(
    page,
    `[...document.querySelectorAll('img, iframe, svg, style, a, [onerror], [onload], [onmouseover], #pwn-link, script:not([src$="/dist/webview/main.js"])')].map((e) => e.outerHTML.slice(0, 80))`,
  );
  assert.deepEqual(found, [], `${label}: elements from the payload exist`);
  assert.deepEqual(
    l.evilRequests.filter((u) => u.includes('evil.test')),
    [],
    `${label}: the payload fetched something`,
  );
}

test('hostile text in every field renders as text with the extension CSP: no script, no element, no fetch', { skip }, async () => {
  const l = await openPanel(host.html);
  try {
    await assertInert(l, 'with CSP');
    const page = l.page;
    // The payload is visible as text where it was put: question, scope, meter, passages, answer.
    const shown = await inPage<string>(page, 'document.body.innerText');
    assert.ok(shown.includes('<img src="https://evil.test/img.png" onerror='), 'the error message shows the payload text');
    // The first answer's views, checked before the second answerStart replaced them, live in the saved state.
    const state = await inPage<{ passages: unknown[]; meter: unknown }>(page, 'window.__state');
    assert.equal(state.passages.length, 0, 'a new answer clears the passages');
    assert.ok(state.meter !== null, 'the meter stays');
    const meterText = await inPage<string>(page, `document.querySelector('.meter').innerText`);
    assert.ok(meterText.includes('</script><script>'), 'the meter lists the payload path as text');
    const titles = await page.$$eval('.seg', (segs) => segs.map((s) => s.getAttribute('title') ?? ''));
    assert.ok(
      titles.some((t) => t.includes('onmouseover=')),
      'a meter segment title carries the payload as plain attribute text',
    );
  } finally {
    await l.page.close();
  }
});

test('the renderer alone is inert: the same messages without any CSP still run nothing and create nothing', { skip }, async () => {
  const noCsp = host.html.replace(/<meta http-equiv="Content-Security-Policy"[^>]*>/, '');
  assert.notEqual(noCsp, host.html);
  const l = await openPanel(noCsp);
  try {
    await assertInert(l, 'without CSP');
    // Passages of the first answer, rendered (replay up to the passages message on a fresh page state).
    await post(l.page, messages().slice(0, 7));
    await l.page.waitForTimeout(200);
    await assertInert(l, 'without CSP, first answer');
    const snippets = await l.page.$$eval('.snippet', (s) => s.map((e) => e.textContent ?? ''));
    assert.equal(snippets.length, 2);
    assert.ok(snippets[0].includes('<svg onload='), 'snippets are text');
    // Untrusted text is bidi-isolated, so an RLO in a file name cannot reorder the line number or score after it.
    const bidi = await inPage<string[]>(
      l.page,
      `[...document.querySelectorAll('.passage .path, .snippet, .scope, .left-out .path, .left-out .reason, .answer .text')].map((e) => getComputedStyle(e).unicodeBidi)`,
    );
    assert.ok(bidi.length >= 5);
    for (const b of bidi) assert.ok(b === 'isolate' || b === 'plaintext' || b === 'isolate-override', `unicode-bidi: ${b}`);
    // The detectors can fail: the same payload parsed as HTML (what innerHTML would do) runs and leaves elements.
    await inPage(l.page, `document.body.insertAdjacentHTML('beforeend', ${JSON.stringify(PAYLOAD)})`);
    await l.page.waitForTimeout(300);
    await assert.rejects(assertInert(l, 'payload parsed as HTML'), /a payload script ran|elements from the payload exist/);
  } finally {
    await l.page.close();
  }
});

test('the CSP blocks inline scripts and remote scripts (a nonce-less script element never runs or loads)', { skip }, async () => {
  const l = await openPanel(host.html);
  try {
    const { page } = l;
    await inPage(
      page,
      `(() => {
        const inline = document.createElement('script');
        inline.textContent = 'window.__inline = 1';
        document.body.append(inline);
        const remote = document.createElement('script');
        remote.src = 'https://evil.test/remote.js';
        document.body.append(remote);
        const img = new Image();
        img.src = 'https://evil.test/pixel.png';
        document.body.append(img);
      })()`,
    );
    await page.waitForTimeout(300);
    assert.equal(await inPage(page, 'window.__inline'), undefined);
    assert.deepEqual(
      l.evilRequests.filter((u) => u.includes('evil.test')),
      [],
      'no request left the page',
    );
    const violations = await inPage<string[]>(page, 'window.__violations');
    assert.ok(
      violations.some((v) => v.startsWith('script-src') && v.includes('inline')),
      violations.join('\n'),
    );
    assert.ok(
      violations.some((v) => v.startsWith('script-src') && v.includes('evil.test')),
      violations.join('\n'),
    );
    assert.ok(
      violations.some((v) => v.startsWith('img-src') && v.includes('evil.test')),
      violations.join('\n'),
    );
    assert.match(host.html, /default-src 'none'/);
    assert.match(host.html, /script-src 'nonce-[A-Za-z0-9+/=]{24}'/);
  } finally {
    await l.page.close();
  }
});

test('messages from the webview are guarded: malformed ones never reach the extension', { skip: false }, async () => {
  const h = host ?? (await panelHost());
  const before = h.commands.length;
  for (const bad of [
    null,
    'ready',
    { type: 'revealPassage', askId: 'a', index: -1 },
    { type: 'revealPassage', askId: { toString: 1 }, index: 0 },
    { type: 'askAgain', question: 'x'.repeat(100_001) },
    { type: 'cancel' },
    { type: 'runCommand', command: 'workbench.action.terminal.new' },
    { type: '__proto__' },
  ]) {
    h.receive(bad);
  }
  assert.equal(h.commands.length, before, JSON.stringify(h.commands.slice(before)));
  h.receive({ type: 'cancel', askId: 'a1' });
  assert.deepEqual(h.commands.slice(before), [{ type: 'cancel', askId: 'a1' }]);
});
