// Runs a built VS Code extension inside REAL VS Code (code-server 4.100.x = VS Code 1.100) and drives
// the workbench with Chromium through playwright-core. Used by the browser end-to-end tests and by the
// integration-test runner (test/e2e/run-in-code-server.ts).
//
// Needs code-server installed by tools/setup-code-server.sh into <repo>/.code-server (git-ignored),
// and Debian's chromium at /usr/bin/chromium.
//
//   const server = await startCodeServer({ workspace, extensionDir });
//   const browser = await launchBrowser();
//   const page = await openWorkbench(browser, server);
//   await runCommand(page, 'Attend: Ask');
//   ...
//   await browser.close(); await server.stop();
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type ElementHandle, type Frame, type Page } from 'playwright-core';

// ---------------------------------------------------------------------------------------------------
// Paths

/** The repository root: the nearest folder above this file holding tools/setup-code-server.sh. */
export function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'tools', 'setup-code-server.sh'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`harness: no repository root above ${__dirname}`);
    dir = up;
  }
}

/** Where tools/setup-code-server.sh installs code-server (override: ATTEND_CODE_SERVER_DIR). */
export function codeServerDir(): string {
  return process.env.ATTEND_CODE_SERVER_DIR ?? path.join(repoRoot(), '.code-server');
}

function codeServerEntry(): string {
  return path.join(codeServerDir(), 'node_modules', 'code-server', 'out', 'node', 'entry.js');
}

/** test-results/ at the repo root (git-ignored), or a subfolder of it; created on demand. */
export function resultsDir(...sub: string[]): string {
  const dir = path.join(repoRoot(), 'test-results', ...sub);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Installs code-server when missing (tools/setup-code-server.sh returns at once when installed). */
export function ensureCodeServer(): void {
  if (fs.existsSync(path.join(codeServerDir(), '.installed')) && fs.existsSync(codeServerEntry())) return;
  const r = spawnSync('bash', [path.join(repoRoot(), 'tools', 'setup-code-server.sh')], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`tools/setup-code-server.sh failed (exit ${r.status})`);
}

// ---------------------------------------------------------------------------------------------------
// code-server

export interface StartOptions {
  /** Folder opened in the workbench. */
  workspace: string;
  /** A built extension folder (its package.json names publisher, name, version). Optional. */
  extensionDir?: string;
  /** 'link' (default) symlinks the folder into the extensions dir; 'copy' copies it (node_modules and
   *  the repo's own scratch folders are linked or skipped, see copyExtension). */
  extensionMode?: 'link' | 'copy';
  /** Merged over DEFAULT_USER_SETTINGS into <user-data>/User/settings.json and <user-data>/Machine/settings.json
   *  (code-server is a remote window: settings of `machine` scope count only from the remote's Machine file, and
   *  are dropped from User settings once the contributing extension's schema registers). */
  userSettings?: Record<string, unknown>;
  /** Extra environment for code-server and so for its extension host (undefined removes a variable). */
  env?: Record<string, string | undefined>;
  /** Names the log file test-results/code-server/<logName>-<port>.log (default 'code-server'). */
  logName?: string;
  /** Milliseconds to wait for HTTP (default 30000). */
  startTimeoutMs?: number;
  /** Keep the temporary user-data and extensions folders after stop() (for debugging). */
  keepTemp?: boolean;
}

export interface CodeServer {
  /** The workbench URL with the workspace folder opened (http://127.0.0.1:PORT/?folder=...). */
  url: string;
  /** http://127.0.0.1:PORT/ */
  baseUrl: string;
  port: number;
  workspace: string;
  userDataDir: string;
  extensionsDir: string;
  /** publisher.name of the installed extension, when extensionDir was given. */
  extensionId?: string;
  /** code-server's stdout+stderr (server, extension-host launches, extension host errors). */
  logFile: string;
  /** Seconds from spawn to HTTP answering. */
  startupMs: number;
  /** Kills code-server's whole process group (extension hosts, file watchers) and removes temp dirs. */
  stop(): Promise<void>;
}

/** Settings that keep the workbench quiet and deterministic under test. */
export const DEFAULT_USER_SETTINGS: Record<string, unknown> = {
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.welcomePage.walkthroughs.openOnInstall': false,
  'workbench.enableExperiments': false,
  'workbench.editor.enablePreview': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'git.enabled': false,
  'git.openRepositoryInParentFolders': 'never',
  'security.workspace.trust.enabled': false,
  'editor.hover.delay': 150,
  'editor.minimap.enabled': false,
  'window.commandCenter': true,
  'files.autoSave': 'off',
};

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

interface ExtensionManifest {
  publisher: string;
  name: string;
  version: string;
}

function readManifest(dir: string): ExtensionManifest {
  const pj = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as Partial<ExtensionManifest>;
  if (!pj.publisher || !pj.name || !pj.version) throw new Error(`${dir}/package.json lacks publisher, name or version`);
  return { publisher: pj.publisher, name: pj.name, version: pj.version };
}

/** Scratch folders never copied into the installed extension (the repo root may be the extension). */
const COPY_SKIP = new Set(['.git', '.code-server', 'test-results', '.vscode-test', '.cache', '.attend-cache', 'out']);

/** Copies an extension folder; node_modules is symlinked rather than copied (it can be large). */
export function copyExtension(src: string, dest: string): void {
  fs.mkdirSync(dest, { recursive: true });
  for (const name of fs.readdirSync(src)) {
    if (COPY_SKIP.has(name)) continue;
    const from = path.join(src, name);
    const to = path.join(dest, name);
    if (name === 'node_modules') fs.symlinkSync(fs.realpathSync(from), to, 'dir');
    else fs.cpSync(from, to, { recursive: true, dereference: true });
  }
}

/** Installs an extension folder as <extensionsDir>/<publisher>.<name>-<version>/; returns publisher.name. */
export function installExtension(extensionDir: string, extensionsDir: string, mode: 'link' | 'copy' = 'link'): string {
  const src = fs.realpathSync(extensionDir);
  const m = readManifest(src);
  const dest = path.join(extensionsDir, `${m.publisher}.${m.name}-${m.version}`);
  if (mode === 'link') fs.symlinkSync(src, dest, 'dir');
  else copyExtension(src, dest);
  return `${m.publisher}.${m.name}`;
}

async function httpUp(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status < 500;
  } catch {
    return false;
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM to the whole group, SIGKILL after 5 s. */
async function killGroup(pgid: number): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-pgid, sig);
    } catch {
      /* gone */
    }
  };
  if (groupAlive(pgid)) {
    signal('SIGTERM');
    const until = Date.now() + 5000;
    while (groupAlive(pgid) && Date.now() < until) await sleep(100);
    if (groupAlive(pgid)) signal('SIGKILL');
    const hard = Date.now() + 3000; // (zombies would keep the group "alive" forever)
    while (groupAlive(pgid) && Date.now() < hard) await sleep(50);
  }
  liveGroups.delete(pgid);
}

// Functions passed to page.evaluate/waitForFunction run in the browser. The repo's tsconfig has no DOM
// lib (and adding it here would leak DOM globals into every file), so they reach the DOM through
// `(globalThis as unknown as Win).document`, typed by these few declarations.
interface DomEl {
  id: string;
  innerText: string;
  textContent: string | null;
  getAttribute(name: string): string | null;
  getBoundingClientRect(): { width: number; height: number };
  querySelector(selector: string): DomEl | null;
}
interface DomDoc {
  body: DomEl | null;
  readyState: string;
  getElementById(id: string): DomEl | null;
  querySelector(selector: string): DomEl | null;
  querySelectorAll(selector: string): ArrayLike<DomEl>;
}
type Win = { document: DomDoc };

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Process groups still running, killed if this process exits without calling stop(). */
const liveGroups = new Set<number>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pgid of liveGroups) {
      try {
        process.kill(-pgid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
}

function tail(file: string, lines = 40): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/** Starts code-server on a free port of 127.0.0.1 with fresh user-data and extensions folders. */
export async function startCodeServer(opts: StartOptions): Promise<CodeServer> {
  const entry = codeServerEntry();
  if (!fs.existsSync(entry)) throw new Error(`code-server is not installed (${entry}); run tools/setup-code-server.sh`);
  const workspace = path.resolve(opts.workspace);
  if (!fs.statSync(workspace).isDirectory()) throw new Error(`workspace ${workspace} is not a folder`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-cs-'));
  const userDataDir = path.join(tmp, 'user-data');
  const extensionsDir = path.join(tmp, 'extensions');
  fs.mkdirSync(path.join(userDataDir, 'User'), { recursive: true });
  fs.mkdirSync(extensionsDir, { recursive: true });
  const settings = { ...DEFAULT_USER_SETTINGS, ...(opts.userSettings ?? {}) };
  fs.writeFileSync(path.join(userDataDir, 'User', 'settings.json'), JSON.stringify(settings, null, 2));
  fs.mkdirSync(path.join(userDataDir, 'Machine'), { recursive: true });
  fs.writeFileSync(path.join(userDataDir, 'Machine', 'settings.json'), JSON.stringify(settings, null, 2));
  // An explicit config file, else code-server writes ~/.config/code-server/config.yaml.
  const configFile = path.join(tmp, 'config.yaml');
  fs.writeFileSync(configFile, 'auth: none\ncert: false\n');

  const extensionId = opts.extensionDir ? installExtension(opts.extensionDir, extensionsDir, opts.extensionMode) : undefined;

  const env: NodeJS.ProcessEnv = { ...process.env };
  // Leaks from a surrounding VS Code / Electron would confuse the server and its extension host.
  for (const k of Object.keys(env)) if (k.startsWith('VSCODE_') || k === 'ELECTRON_RUN_AS_NODE') delete env[k];
  delete env.PORT;
  delete env.PASSWORD;
  delete env.HASHED_PASSWORD;
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }

  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const logFile = path.join(resultsDir('code-server'), `${opts.logName ?? 'code-server'}-${port}.log`);
    const log = fs.openSync(logFile, 'w');
    const args = [
      entry,
      '--config',
      configFile,
      '--auth',
      'none',
      '--bind-addr',
      `127.0.0.1:${port}`,
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--disable-getting-started-override',
      '--user-data-dir',
      userDataDir,
      '--extensions-dir',
      extensionsDir,
      workspace,
    ];
    const t0 = Date.now();
    const child: ChildProcess = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log], env });
    fs.closeSync(log);
    const pgid = child.pid;
    if (pgid === undefined) throw new Error('code-server did not start');
    installExitHook();
    liveGroups.add(pgid);
    let exited = false;
    const exitPromise = new Promise<void>((resolve) => child.once('exit', () => ((exited = true), resolve())));

    const baseUrl = `http://127.0.0.1:${port}/`;
    const deadline = t0 + (opts.startTimeoutMs ?? 30000);
    let up = false;
    while (!exited && Date.now() < deadline) {
      if (await httpUp(`${baseUrl}healthz`)) {
        up = true;
        break;
      }
      await sleep(100);
    }
    const stop = async (): Promise<void> => {
      await killGroup(pgid);
      await Promise.race([exitPromise, sleep(1000)]);
      if (!opts.keepTemp) fs.rmSync(tmp, { recursive: true, force: true });
    };
    if (up) {
      const url = `${baseUrl}?folder=${encodeURIComponent(workspace)}`;
      const server: CodeServer = {
        url,
        baseUrl,
        port,
        workspace,
        userDataDir,
        extensionsDir,
        logFile,
        startupMs: Date.now() - t0,
        stop,
      };
      if (extensionId !== undefined) server.extensionId = extensionId;
      return server;
    }
    const why = exited ? 'exited early' : 'did not answer HTTP in time';
    lastError = new Error(`code-server ${why} (log ${logFile}):\n${tail(logFile)}`);
    await killGroup(pgid); // keep the temp folders for the retry
    if (!exited) break; // a hang is not a port race; do not retry
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  throw lastError ?? new Error('code-server did not start');
}

// ---------------------------------------------------------------------------------------------------
// Browser

/** Flags that work for Debian's chromium in this container (no sandbox, no GPU, no network chatter). */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface LaunchOptions {
  headless?: boolean;
  executablePath?: string;
  args?: string[];
}

/** Chromium through playwright-core (headless unless HEADED=1). */
export async function launchBrowser(opts: LaunchOptions = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: opts.executablePath ?? process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: opts.headless ?? process.env.HEADED !== '1',
    args: [...CHROMIUM_ARGS, ...(opts.args ?? [])],
  });
}

export interface OpenOptions {
  viewport?: { width: number; height: number };
  timeoutMs?: number;
  /** Also wait for this status bar item (see statusBarItem) as the sign that the extension activated. */
  waitForStatusBarItem?: string;
  /** Collects the page's console errors here (VS Code logs extension-host failures to the console). */
  consoleErrors?: string[];
}

/** Opens the workbench for a server in a new page and waits for it to load. */
export async function openWorkbench(browser: Browser, server: CodeServer, opts: OpenOptions = {}): Promise<Page> {
  const context = await browser.newContext({ viewport: opts.viewport ?? { width: 1400, height: 900 } });
  const page = await context.newPage();
  if (opts.consoleErrors) {
    const sink = opts.consoleErrors;
    page.on('console', (m) => {
      if (m.type() === 'error') sink.push(m.text());
    });
    page.on('pageerror', (e) => sink.push(String(e)));
  }
  await page.goto(server.url);
  await waitForWorkbench(page, opts.timeoutMs);
  if (opts.waitForStatusBarItem) await statusBarItem(page, opts.waitForStatusBarItem, opts.timeoutMs);
  return page;
}

/** Waits until the workbench has rendered its parts and the connection to the server is up. */
export async function waitForWorkbench(page: Page, timeoutMs = 60000): Promise<void> {
  await page.waitForSelector('.monaco-workbench .part.statusbar', { state: 'visible', timeout: timeoutMs });
  await page.waitForSelector('.monaco-workbench .part.editor', { state: 'visible', timeout: timeoutMs });
  // The remote indicator reads "remote" until the remote extension host connection is established
  // (the extension host only starts once a client is connected).
  await page.waitForFunction(
    () => {
      const host = (globalThis as unknown as Win).document.getElementById('status.host');
      return !!host && !/Opening Remote|Reconnecting|Disconnected/i.test(host.getAttribute('aria-label') ?? '');
    },
    undefined,
    { timeout: timeoutMs },
  );
}

// --- quick input / commands -------------------------------------------------------------------------

const QUICK_INPUT = '.quick-input-widget';
const QUICK_INPUT_BOX = '.quick-input-widget .quick-input-box input';

async function openQuickInput(page: Page, keys: string[], timeoutMs: number): Promise<void> {
  let lastErr: unknown;
  for (const key of keys) {
    await page.keyboard.press(key);
    try {
      await page.waitForSelector(QUICK_INPUT_BOX, { state: 'visible', timeout: Math.min(timeoutMs, 3000) });
      return;
    } catch (e) {
      lastErr = e;
      await page.keyboard.press('Escape');
    }
  }
  throw new Error(`quick input did not open with ${keys.join(' / ')}: ${String(lastErr)}`);
}

/** Picks the quick-input row whose label is exactly `label` (waits for it), by clicking it. */
async function pickRow(page: Page, label: string, timeoutMs: number): Promise<void> {
  const row = page
    .locator(`${QUICK_INPUT} .quick-input-list .monaco-list-row`)
    .filter({ has: page.locator('.label-name', { hasText: new RegExp(`^\\s*${escapeRegExp(label)}\\s*$`) }) })
    .first();
  await row.waitFor({ state: 'visible', timeout: timeoutMs });
  await row.click();
  await page.waitForSelector(QUICK_INPUT, { state: 'hidden', timeout: timeoutMs });
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Runs a command from the command palette by its full title as the palette shows it
 * ("Category: Title", e.g. "Sample: Hello"): F1 (falls back to Ctrl+Shift+P), type, pick the row.
 * The palette lists the commands known when it opens, and an extension's contributions can arrive a few seconds
 * after the workbench renders, so a palette without the row is closed and opened again until `timeoutMs`.
 */
export async function runCommand(page: Page, title: string, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await openQuickInput(page, ['F1', 'Control+Shift+P'], Math.max(1000, deadline - Date.now()));
    await page.fill(QUICK_INPUT_BOX, `>${title}`);
    const last = Date.now() + 3000 >= deadline;
    try {
      await pickRow(page, title, last ? Math.max(1000, deadline - Date.now()) : 3000);
      return;
    } catch (e) {
      if (last) throw e;
      await page.keyboard.press('Escape');
      await page.waitForSelector(QUICK_INPUT, { state: 'hidden', timeout: 3000 }).catch(() => undefined);
    }
  }
}

/** Opens a workspace file through Quick Open (Ctrl+P) by its relative path; waits for its editor. */
export async function openFile(page: Page, relativePath: string, timeoutMs = 10000): Promise<void> {
  await openQuickInput(page, ['Control+P'], timeoutMs);
  await page.fill(QUICK_INPUT_BOX, relativePath);
  const base = path.posix.basename(relativePath);
  await pickRow(page, base, timeoutMs);
  await page.locator('.tabs-container .tab.active', { hasText: base }).waitFor({ state: 'visible', timeout: timeoutMs });
  await page.locator('.editor-instance .monaco-editor .view-lines').first().waitFor({ state: 'visible', timeout: timeoutMs });
}

// --- status bar ------------------------------------------------------------------------------------

/**
 * Finds a status bar item. `idOrName` is matched against the element id, which VS Code sets to
 * "<publisher.extension>.<item id>" for createStatusBarItem(id, ...): the full id or just the item id
 * ("sample.status") work. Failing that, against the item's name or accessible label (aria-label).
 */
export async function statusBarItem(page: Page, idOrName: string, timeoutMs = 30000): Promise<ElementHandle> {
  const handle = await page.waitForFunction(
    (key: string) => {
      const doc = (globalThis as unknown as Win).document;
      const items = Array.from(doc.querySelectorAll('.part.statusbar .statusbar-item'));
      return (
        items.find((e) => e.id === key) ??
        items.find((e) => e.id.endsWith(`.${key}`)) ??
        items.find((e) => e.getAttribute('aria-label') === key) ??
        null
      );
    },
    idOrName,
    { timeout: timeoutMs },
  );
  const el = handle.asElement();
  if (!el) throw new Error(`status bar item ${idOrName} not found`);
  return el as ElementHandle;
}

/** The visible text of a status bar item (codicons dropped, whitespace collapsed). */
export async function statusBarText(page: Page, idOrName: string, timeoutMs = 30000): Promise<string> {
  const el = await statusBarItem(page, idOrName, timeoutMs);
  const text = await el.evaluate((e) => (e as unknown as DomEl).innerText);
  return text.replace(/\s+/g, ' ').trim();
}

/** Waits until a status bar item's text matches; returns it. */
export async function waitForStatusBarText(page: Page, idOrName: string, expected: string | RegExp, timeoutMs = 15000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      last = await statusBarText(page, idOrName, Math.max(1, deadline - Date.now()));
    } catch {
      break;
    }
    if (typeof expected === 'string' ? last.includes(expected) : expected.test(last)) return last;
    await sleep(100);
  }
  throw new Error(`status bar item ${idOrName}: expected ${String(expected)}, last text ${JSON.stringify(last)}`);
}

// --- webviews --------------------------------------------------------------------------------------

export interface WebviewQuery {
  /** The frame must contain this text (document.body.innerText). */
  text?: string | RegExp;
  /** The frame must contain an element matching this selector. */
  selector?: string;
  timeoutMs?: number;
}

/**
 * The frame holding a webview's own HTML. VS Code nests it: the workbench has an outer iframe
 * (.../webview/browser/pre/index.html?id=...) whose child iframe with id "active-frame" holds the
 * content (a "pending-frame" replaces it on each html update). Returns the first one matching `query`.
 */
export async function webviewFrame(page: Page, query: WebviewQuery = {}): Promise<Frame> {
  const deadline = Date.now() + (query.timeoutMs ?? 15000);
  for (;;) {
    for (const outer of page.frames()) {
      if (!outer.url().includes('/webview/browser/pre/index.html')) continue;
      for (const inner of outer.childFrames()) {
        if (inner.isDetached()) continue;
        try {
          const el = await inner.frameElement();
          if ((await el.getAttribute('id')) !== 'active-frame') continue;
          const ok = await inner.evaluate(
            ({ sel, text, flags }) => {
              const doc = (globalThis as unknown as Win).document;
              if (sel && !doc.querySelector(sel)) return false;
              if (text === null) return doc.readyState !== 'loading';
              const body = doc.body ? doc.body.innerText : '';
              return flags === null ? body.includes(text) : new RegExp(text, flags).test(body);
            },
            {
              sel: query.selector ?? null,
              text: query.text === undefined ? null : typeof query.text === 'string' ? query.text : query.text.source,
              flags: query.text instanceof RegExp ? query.text.flags : null,
            },
          );
          if (ok) return inner;
        } catch {
          /* frame swapped or detached while we looked; retry */
        }
      }
    }
    if (Date.now() > deadline) throw new Error(`no webview frame matching ${JSON.stringify({ ...query, text: String(query.text) })}`);
    await sleep(100);
  }
}

/** The text content (innerText) of the first webview matching `query`. */
export async function webviewText(page: Page, query: WebviewQuery = {}): Promise<string> {
  const frame = await webviewFrame(page, query);
  return frame.evaluate(() => {
    const doc = (globalThis as unknown as Win).document;
    return doc.body ? doc.body.innerText : '';
  });
}

// --- editor hover ----------------------------------------------------------------------------------

/**
 * Hovers the mouse over the character at (line, column) — both 1-based, as VS Code shows them — of the
 * active editor. Moves the cursor there with Go to Line (Ctrl+G "line:column"), then points the mouse
 * at the cursor's place plus half a character.
 */
export async function hoverAt(page: Page, line: number, column: number, timeoutMs = 10000): Promise<void> {
  const editor = page.locator('.editor-instance .monaco-editor').first();
  await editor.locator('.view-lines').click({ position: { x: 5, y: 5 } }); // focus the active editor
  await openQuickInput(page, ['Control+G'], timeoutMs);
  await page.fill(QUICK_INPUT_BOX, `:${line}:${column}`);
  await page.keyboard.press('Enter');
  await page.waitForSelector(QUICK_INPUT, { state: 'hidden', timeout: timeoutMs });
  const cursor = editor.locator('.cursors-layer .cursor').first();
  await cursor.waitFor({ state: 'attached', timeout: timeoutMs });
  const box = await cursor.boundingBox();
  if (!box) throw new Error('hoverAt: no cursor box');
  const charWidth = await editor.evaluate((e) => {
    const probe = (e as unknown as DomEl).querySelector('.view-line span span');
    if (!probe || !probe.textContent) return 8;
    return probe.getBoundingClientRect().width / probe.textContent.length;
  });
  // Move away first so a hover already showing at the same place is re-triggered.
  await page.mouse.move(1, 1);
  await page.mouse.move(box.x + Math.max(2, charWidth / 2), box.y + box.height / 2, { steps: 4 });
}

/** Waits for the editor hover widget and returns its text (all hover parts, separated by newlines). */
export async function hoverText(page: Page, timeoutMs = 10000): Promise<string> {
  const hover = page.locator('.monaco-editor .monaco-hover:not(.hidden) .monaco-hover-content').first();
  await hover.waitFor({ state: 'visible', timeout: timeoutMs });
  // Contents render asynchronously; wait until non-empty.
  const deadline = Date.now() + timeoutMs;
  let text = '';
  while (Date.now() < deadline) {
    text = (await hover.innerText()).trim();
    if (text && !/^Loading\.\.\.$/.test(text)) break;
    await sleep(50);
  }
  return text;
}

// --- screenshots -----------------------------------------------------------------------------------

/** Saves a window screenshot to test-results/screenshots/<name>.png (CSS animations such as the hover
 *  fade-in are finished first); returns the path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  const file = path.join(resultsDir('screenshots'), `${name.replace(/[^\w.-]+/g, '_')}.png`);
  await page.screenshot({ path: file, animations: 'disabled' });
  return file;
}
