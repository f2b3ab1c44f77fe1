// Reliability: security. The engine opens no network socket while loading and answering (checked in a child process
// two ways: a preload that fails every Node network API, and the process's own socket descriptors against the
// kernel's inet tables, so native code is covered too); model paths cannot leave the model folder; an untrusted
// workspace cannot choose the model; passage hovers escape every untrusted string and trust only one command.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { openCheckpoint, INDEX_FILE } from '../../engine/safetensors';
import { chooseModelPath } from '../../extension/modelSetting';
import { fixturePath } from '../../tools/make-fixture';
// The module system itself (to stand in for `vscode`, which only exists inside the editor).
const Module = createRequire(__filename)('node:module') as typeof import('node:module');

const ROOT = path.resolve(__dirname, '..', '..', '..');

/** markdown-it comes with @vscode/vsce (a dev dependency); without it the rendering check is skipped, saying so. */
type Markdown = new (opts: { html: boolean; linkify: boolean }) => { render(src: string): string };
function markdownIt(): Markdown | null {
  try {
    return createRequire(__filename)('markdown-it') as Markdown;
  } catch {
    return null;
  }
}
const MODEL = fixturePath('tiny-llama');
const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-rel-sec-'));
  dirs.push(d);
  return d;
}

// ---------------------------------------------------------------------------------------------------------------
// No network

/** Loaded with -r: every Node network entry point records the attempt and throws. */
const PRELOAD = `
const attempts = [];
globalThis.__netAttempts = attempts;
const deny = (what) => function () { attempts.push(what); throw new Error('network use refused by the test: ' + what); };
const net = require('node:net');
net.Socket.prototype.connect = deny('net.Socket.connect');
net.connect = net.createConnection = deny('net.connect');
net.Server.prototype.listen = deny('net.Server.listen');
const dns = require('node:dns');
for (const k of ['lookup', 'resolve', 'resolve4', 'resolve6', 'resolveAny', 'reverse']) dns[k] = deny('dns.' + k);
for (const k of ['lookup', 'resolve', 'resolve4', 'resolve6']) dns.promises[k] = deny('dns.promises.' + k);
for (const m of ['node:http', 'node:https']) { const h = require(m); h.request = deny(m + '.request'); h.get = deny(m + '.get'); }
require('node:tls').connect = deny('tls.connect');
require('node:http2').connect = deny('http2.connect');
require('node:dgram').createSocket = deny('dgram.createSocket');
globalThis.fetch = deny('fetch');
process.on('exit', () => {
  // Sockets this process holds that the kernel lists as TCP/UDP/raw (inet): native code cannot hide those.
  const inodes = new Set();
  for (const fd of require('node:fs').readdirSync('/proc/self/fd')) {
    try { const m = /^socket:\\[(\\d+)\\]$/.exec(require('node:fs').readlinkSync('/proc/self/fd/' + fd)); if (m) inodes.add(m[1]); } catch {}
  }
  const inet = [];
  for (const t of ['tcp', 'tcp6', 'udp', 'udp6', 'raw', 'raw6']) {
    let rows = [];
    try { rows = require('node:fs').readFileSync('/proc/self/net/' + t, 'utf8').trim().split('\\n').slice(1); } catch {}
    for (const r of rows) { const inode = r.trim().split(/\\s+/)[9]; if (inodes.has(inode)) inet.push(t + ':' + inode); }
  }
  require('node:fs').writeFileSync(process.env.ATTEND_NET_REPORT, JSON.stringify({ attempts, inet, sockets: inodes.size }));
});
`;

function runWithNetGuard(script: string): { attempts: string[]; inet: string[]; status: number | null; stderr: string } {
  const dir = tmp();
  const preload = path.join(dir, 'no-net.js');
  const report = path.join(dir, 'report.json');
  fs.writeFileSync(preload, PRELOAD);
  const r = spawnSync(process.execPath, ['-r', preload, '-e', script], {
    env: { ...process.env, ATTEND_NET_REPORT: report },
    encoding: 'utf8',
    timeout: 300_000,
  });
  const out = JSON.parse(fs.readFileSync(report, 'utf8')) as { attempts: string[]; inet: string[] };
  return { ...out, status: r.status, stderr: r.stderr };
}

test(
  'the guard can fail: a script that makes a request or opens a TCP socket natively is caught',
  { skip: process.platform !== 'linux' },
  () => {
    const js = runWithNetGuard(`require('node:http').get('http://127.0.0.1:9/'); `);
    assert.deepEqual(js.attempts, ['node:http.get']);
    // A listening socket made below the patched JS API (process.binding is what native code would do): still seen.
    const native = runWithNetGuard(`
    const { TCP, constants } = process.binding('tcp_wrap');
    const h = new TCP(constants.SERVER); h.bind('127.0.0.1', 0); h.listen(1);
    setTimeout(() => process.exit(0), 50);
  `);
    assert.deepEqual(native.attempts, []);
    assert.ok(native.inet.length >= 1, `inet sockets: ${JSON.stringify(native)}`);
  },
);

test('loading a model and answering (with the disk cache) opens no network socket at all', { skip: process.platform !== 'linux' }, () => {
  const cacheDir = tmp();
  const script = `
    const { Engine } = require(${JSON.stringify(path.join(ROOT, 'out', 'engine', 'engine.js'))});
    (async () => {
      const engine = await Engine.load({ modelDir: ${JSON.stringify(MODEL)}, cacheDir: ${JSON.stringify(cacheDir)} });
      const r = await engine.ask({ docs: [{ path: 'a.txt', text: 'The keeper counted ships.\\n'.repeat(60) }], question: 'Who counted?', maxNewTokens: 4 });
      if (!(r.promptTokens > 0)) throw new Error('no answer');
      await engine.dispose();
    })().catch((e) => { console.error(e); process.exit(3); });
  `;
  const r = runWithNetGuard(script);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.attempts, []);
  assert.deepEqual(r.inet, []);
  assert.ok(fs.readdirSync(cacheDir).length > 0, 'the cache was written: the ask really ran');
});

// ---------------------------------------------------------------------------------------------------------------
// Paths

test('a sharded index cannot name a shard outside the model folder (.., absolute, nested ..)', () => {
  const dir = tmp();
  fs.cpSync(MODEL, dir, { recursive: true });
  fs.renameSync(path.join(dir, 'model.safetensors'), path.join(dir, 'model-00001-of-00001.safetensors'));
  for (const shard of ['../model.safetensors', path.join(os.tmpdir(), 'x.safetensors'), 'sub/../../x.safetensors', '..\\x.safetensors']) {
    fs.writeFileSync(path.join(dir, INDEX_FILE), JSON.stringify({ weight_map: { 'model.norm.weight': shard } }));
    assert.throws(
      () => openCheckpoint(dir),
      (e: Error) => e.message.includes('not a file name inside the model folder') && e.message.includes(INDEX_FILE),
    );
  }
});

test('untrusted workspace: only the user value of attend.model.path counts; the workspace value is named as ignored', () => {
  const evil = '/tmp/evil-model';
  // Untrusted: even when the configuration API would resolve the workspace's value, the user's value is used.
  assert.deepEqual(chooseModelPath({ workspaceValue: evil }, evil, false), { raw: '', ignoredWorkspaceValue: evil });
  assert.deepEqual(chooseModelPath({ globalValue: '~/models/mine', workspaceFolderValue: evil }, evil, false), {
    raw: '~/models/mine',
    ignoredWorkspaceValue: evil,
  });
  assert.deepEqual(chooseModelPath({ globalValue: ' /m ' }, '/m', false), { raw: '/m', ignoredWorkspaceValue: null });
  assert.deepEqual(chooseModelPath(undefined, undefined, false), { raw: '', ignoredWorkspaceValue: null });
  // Trusted: what the configuration API resolves.
  assert.deepEqual(chooseModelPath({ globalValue: '/a', workspaceValue: '/b' }, '/b', true), { raw: '/b', ignoredWorkspaceValue: null });
});

// ---------------------------------------------------------------------------------------------------------------
// Hovers: extension/decorations.ts with a recording stand-in for the `vscode` module

/** VS Code's MarkdownString.appendText escaping (src/vs/base/common/htmlContent.ts), with theme icons escaped. */
function escapeMarkdown(text: string): string {
  return text
    .replace(/[\\`*_{}[\]()#+\-!~]/g, '\\$&')
    .replace(/\$\(/g, '\\$(')
    .replace(/([ \t]+)/g, (_, g: string) => '&nbsp;'.repeat(g.length))
    .replace(/\n/g, '\n\n')
    .replace(/^>/gm, '\\>')
    .replace(/</g, '&lt;');
}

class FakeMarkdownString {
  value = '';
  isTrusted: unknown = undefined;
  supportHtml = false;
  readonly calls: { kind: 'markdown' | 'text'; value: string }[] = [];
  constructor(
    value?: string,
    readonly supportThemeIcons = false,
  ) {
    if (value) this.value = value;
  }
  appendMarkdown(v: string): this {
    this.calls.push({ kind: 'markdown', value: v });
    this.value += v;
    return this;
  }
  appendText(v: string): this {
    this.calls.push({ kind: 'text', value: v });
    this.value += escapeMarkdown(v);
    return this;
  }
}

function fakeVscode(): Record<string, unknown> {
  const disposable = { dispose: () => undefined };
  class Range {
    constructor(
      readonly start: unknown,
      readonly end: unknown,
    ) {}
  }
  class Hover {
    constructor(
      readonly contents: FakeMarkdownString,
      readonly range: Range,
    ) {}
  }
  return {
    MarkdownString: FakeMarkdownString,
    Range,
    Hover,
    ThemeColor: class {
      constructor(readonly id: string) {}
    },
    OverviewRulerLane: { Right: 4 },
    DecorationRangeBehavior: { ClosedClosed: 1 },
    window: {
      createTextEditorDecorationType: () => disposable,
      onDidChangeVisibleTextEditors: () => disposable,
      visibleTextEditors: [],
    },
    workspace: { onDidChangeTextDocument: () => disposable },
    languages: { registerHoverProvider: () => disposable },
  };
}

test('passage hovers: untrusted text only through appendText, HTML off, one trusted command; rendered, payloads stay text', async () => {
  const moduleWithLoad = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
  const realLoad = moduleWithLoad._load;
  const fake = fakeVscode();
  moduleWithLoad._load = function (request: string, ...rest: unknown[]) {
    return request === 'vscode' ? fake : realLoad.call(this, request, ...rest);
  };
  try {
    const { PassageDecorations } = await import('../../extension/decorations');
    const payload =
      '<img src=x onerror=alert(1)> </script><script>alert(2)</script> [click](command:workbench.action.terminal.new) ' +
      '[x](javascript:alert(3)) ![i](https://evil.example/p.png) $(alert) <style>*{display:none}</style> \u202Egnp.exe\u202C **bold**';
    const decorations = new PassageDecorations();
    decorations.set([
      {
        askId: 'a',
        index: 0,
        uri: 'file:///w/doc.md',
        range: { start: 0, end: 50 },
        score: 0.5,
        strength: 1,
        path: payload,
        startLine: 0,
        endLine: 1,
        supported: payload,
      },
    ]);
    const document = { uri: { toString: () => 'file:///w/doc.md' }, offsetAt: () => 10, positionAt: (o: number) => ({ o }) };
    const hover = decorations.provideHover(document as never, {} as never) as unknown as { contents: FakeMarkdownString };
    const md = hover.contents;
    assert.deepEqual(md.isTrusted, { enabledCommands: ['attend.showPanel'] });
    assert.equal(md.supportHtml, false);
    for (const c of md.calls.filter((x) => x.kind === 'markdown')) {
      assert.ok(!c.value.includes('<') && !c.value.includes('alert'), `appendMarkdown got untrusted text: ${c.value}`);
    }
    assert.ok(
      md.calls.some((c) => c.kind === 'text' && c.value.includes('onerror')),
      'the sentence went through appendText',
    );
    // Render the markdown (HTML off, as VS Code's renderer with supportHtml false) and look at what it became.
    const MarkdownIt = markdownIt();
    if (!MarkdownIt) {
      process.stdout.write('# markdown-it not installed: the rendered-hover check is skipped\n');
      return;
    }
    const html = new MarkdownIt({ html: false, linkify: false }).render(md.value);
    const hrefs = [...html.matchAll(/href="([^"]*)"/g)].map((m) => m[1]);
    assert.deepEqual(hrefs, ['command:attend.showPanel'], html);
    assert.ok(!/<img|<script|<style/i.test(html), html);
    assert.ok(html.includes('onerror=alert(1)'), 'the payload is shown as text');
    decorations.dispose();
  } finally {
    moduleWithLoad._load = realLoad;
  }
});
