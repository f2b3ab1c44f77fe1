// The answer panel: streamed answer, the context meter, ranked passages. Hovering (or focusing) an answer sentence
// highlights the passages it drew on. Every string from documents or the model goes in through textContent; the DOM
// is built with createElement only. State survives hiding and reloads through vscode.setState.

import {
  isExtensionToWebviewMessage,
  isWebviewState,
  type ExtensionToWebviewMessage,
  type MeterView,
  type WebviewState,
  type WebviewToExtensionMessage,
} from '../engine/protocol';

interface VsCodeApi {
  postMessage(msg: WebviewToExtensionMessage): void;
  getState(): unknown;
  setState(state: WebviewState): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

const vscode = acquireVsCodeApi();

const EMPTY: WebviewState = {
  version: 1,
  askId: null,
  question: '',
  scope: '',
  answer: '',
  sentences: [],
  summary: null,
  passages: [],
  meter: null,
  error: null,
};

const saved = vscode.getState();
let state: WebviewState = isWebviewState(saved) ? saved : EMPTY;
let progress = '';
let streaming = false;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A decorative codicon (the font ships in dist/webview/codicons); screen readers skip it. */
function icon(name: string): HTMLSpanElement {
  const i = el('span', `codicon codicon-${name}`);
  i.setAttribute('aria-hidden', 'true');
  return i;
}

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

function short(n: number): string {
  if (n < 1000) return String(n);
  const k = (n / 1000).toFixed(1);
  return `${k.endsWith('.0') ? k.slice(0, -2) : k}k`;
}

function update(patch: Partial<WebviewState>): void {
  state = { ...state, ...patch };
  vscode.setState(state);
}

function onMessage(msg: ExtensionToWebviewMessage): void {
  switch (msg.type) {
    case 'answerStart':
      streaming = true;
      progress = '';
      update({
        askId: msg.askId,
        question: msg.question,
        scope: msg.scope,
        answer: '',
        sentences: [],
        summary: null,
        passages: [],
        error: null,
      });
      render();
      return;
    case 'answerProgress':
      if (msg.askId !== state.askId) return;
      progress = msg.label;
      renderStatus();
      return;
    case 'answerToken':
      if (msg.askId !== state.askId) return;
      state = { ...state, answer: state.answer + msg.text }; // saved on done; tokens come fast
      appendAnswerText(msg.text);
      return;
    case 'answerDone':
      if (msg.askId !== state.askId) return;
      streaming = false;
      update({ answer: msg.answer, sentences: msg.sentences, summary: msg.summary });
      render();
      return;
    case 'answerError':
      if (msg.askId !== state.askId) return;
      streaming = false;
      update({ error: msg.message });
      render();
      return;
    case 'meter':
      update({ meter: msg.meter });
      renderMeter();
      return;
    case 'passages':
      if (msg.askId !== state.askId) return;
      update({ passages: msg.passages });
      renderPassages();
      return;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Layout

const root = document.getElementById('root') ?? document.body;
const header = el('section', 'header');
const statusLine = el('div', 'status');
const answerBox = el('section', 'answer');
const summaryLine = el('div', 'summary');
const meterBox = el('section', 'meter');
const passagesBox = el('section', 'passages');
root.append(header, statusLine, answerBox, summaryLine, meterBox, passagesBox);

function render(): void {
  renderHeader();
  renderStatus();
  renderAnswer();
  renderMeter();
  renderPassages();
}

function renderHeader(): void {
  header.replaceChildren();
  if (!state.question) {
    header.append(
      el('p', 'hint', 'Run “Attend: Ask About Current File”, “Ask About Selection” or “Ask About Workspace” to ask a question.'),
    );
    return;
  }
  const form = el('form', 'ask-again');
  const input = el('input');
  input.type = 'text';
  input.value = state.question;
  input.setAttribute('aria-label', 'Question');
  const again = el('button', undefined, 'Ask again');
  again.prepend(icon('refresh'));
  again.type = 'submit';
  form.append(input, again);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (input.value.trim()) vscode.postMessage({ type: 'askAgain', question: input.value.trim() });
  });
  header.append(form, el('div', 'scope', state.scope));
}

function renderStatus(): void {
  statusLine.replaceChildren();
  if (streaming) {
    statusLine.append(el('span', 'spinner', '●'), el('span', undefined, ` ${progress || 'working…'} `));
    const cancel = el('button', 'secondary', 'Cancel');
    cancel.prepend(icon('debug-stop'));
    cancel.addEventListener('click', () => state.askId && vscode.postMessage({ type: 'cancel', askId: state.askId }));
    statusLine.append(cancel);
  } else if (state.error) {
    statusLine.append(el('span', 'error', state.error));
  }
}

function appendAnswerText(text: string): void {
  let live = answerBox.querySelector('.streaming');
  if (!live) {
    answerBox.replaceChildren();
    live = el('div', 'streaming');
    answerBox.append(live);
  }
  live.append(document.createTextNode(text));
}

function renderAnswer(): void {
  answerBox.replaceChildren();
  summaryLine.replaceChildren();
  if (!state.answer) return;
  if (streaming || state.sentences.length === 0) {
    const live = el('div', streaming ? 'streaming' : 'text');
    live.textContent = state.answer;
    answerBox.append(live);
  } else {
    const text = el('div', 'text');
    let at = 0;
    for (const [i, s] of state.sentences.entries()) {
      if (s.start > at) text.append(document.createTextNode(state.answer.slice(at, s.start)));
      const span = el('span', 'sentence', state.answer.slice(s.start, s.end));
      span.tabIndex = 0;
      span.dataset['sentence'] = String(i);
      if (s.passages.length === 0) span.classList.add('unattributed');
      const on = (): void => highlightPassages(i);
      span.addEventListener('mouseenter', on);
      span.addEventListener('focus', on);
      span.addEventListener('mouseleave', () => highlightPassages(null));
      span.addEventListener('blur', () => highlightPassages(null));
      text.append(span);
      at = s.end;
    }
    if (at < state.answer.length) text.append(document.createTextNode(state.answer.slice(at)));
    answerBox.append(text);
  }
  const s = state.summary;
  if (s) {
    const parts = [
      `${fmt(s.promptTokens)} prompt tokens`,
      `${fmt(s.reusedTokens)} reused from cache`,
      `${fmt(s.computedTokens)} computed`,
      `${fmt(s.generatedTokens)} generated`,
      `prefill ${(s.prefillMs / 1000).toFixed(1)} s`,
      ...(s.quote === 'on'
        ? ['quoted from the documents']
        : s.quote === 'released'
          ? ['not a verbatim quote: no span of the documents fit']
          : []),
      ...(s.reading === 'memory' ? ['read from the retrieved passages alone (the likelier answer)'] : []),
      ...(s.reading === 'passage' ? ['read from the best-matching passage alone (the likelier answer)'] : []),
      s.stopReason === 'length' ? 'stopped at the token limit' : s.stopReason === 'cancelled' ? 'cancelled' : 'complete',
    ];
    summaryLine.textContent = parts.join(' · ');
  }
}

function highlightPassages(sentence: number | null): void {
  const weights = new Map<number, number>();
  if (sentence !== null) for (const p of state.sentences[sentence]?.passages ?? []) weights.set(p.index, p.weight);
  for (const item of passagesBox.querySelectorAll<HTMLElement>('.passage')) {
    const w = weights.get(Number(item.dataset['index']));
    item.classList.toggle('lit', w !== undefined);
    item.classList.toggle('dim', sentence !== null && w === undefined);
    item.style.setProperty('--lit', w === undefined ? '0' : String(Math.max(0.25, w)));
  }
}

function renderMeter(): void {
  meterBox.replaceChildren();
  const m = state.meter;
  if (!m) return;
  const meterTitle = el('h2', undefined, `Context ${short(m.used)} / ${short(m.budget)} tokens`);
  meterTitle.prepend(icon('dashboard'));
  meterBox.append(meterTitle);
  meterBox.append(meterBar(m));
  const legend = el('div', 'legend');
  const included = m.files.filter((f) => f.included);
  const fileTokens = included.reduce((s, f) => s + f.tokens, 0);
  legend.append(
    swatch('files', `${included.length} file${included.length === 1 ? '' : 's'} ${fmt(fileTokens)}`),
    swatch('frame', `template ${fmt(m.frameTokens)}`),
    swatch('question', `question ${fmt(m.questionTokens)}`),
    swatch('reserve', `answer reserve ${fmt(m.answerReserve)}`),
    swatch('cached', `cached ${fmt(m.cachedTokens)} · to compute ${fmt(m.toComputeTokens)}`),
  );
  if (m.window !== null) legend.append(swatch('window', `window ${fmt(m.window)} + ${fmt(m.sinks)} sinks`));
  meterBox.append(legend);
  if (m.leftOut.length > 0) {
    const details = el('details', 'left-out');
    details.open = m.leftOut.length <= 5;
    details.append(el('summary', undefined, `Left out: ${m.leftOut.length} file${m.leftOut.length === 1 ? '' : 's'}`));
    const list = el('ul');
    for (const l of m.leftOut) {
      const li = el('li');
      li.append(el('span', 'path', l.path), el('span', 'reason', ` — ${l.reason}`));
      list.append(li);
    }
    details.append(list);
    meterBox.append(details);
  }
}

function swatch(kind: string, label: string): HTMLElement {
  const s = el('span', 'item');
  s.append(el('span', `swatch ${kind}`), document.createTextNode(label));
  return s;
}

function meterBar(m: MeterView): HTMLElement {
  const bar = el('div', 'bar');
  bar.setAttribute('role', 'img');
  bar.setAttribute('aria-label', `${fmt(m.used)} of ${fmt(m.budget)} tokens used`);
  const scale = Math.max(m.budget, m.used) || 1;
  const pct = (n: number): string => `${((n / scale) * 100).toFixed(3)}%`;
  const seg = (cls: string, tokens: number, title: string): void => {
    if (tokens <= 0) return;
    const s = el('div', `seg ${cls}`);
    s.style.width = pct(tokens);
    s.title = title;
    bar.append(s);
  };
  // Prompt order: template prefix is folded into "frame" (shown first), documents, question, answer reserve.
  seg('frame', m.frameTokens, `template: ${fmt(m.frameTokens)} tokens`);
  for (const f of m.files.filter((x) => x.included)) {
    if (f.cached > 0) seg('file cached', f.cached, `${f.path}: ${fmt(f.tokens)} tokens (cached)`);
    if (f.tokens - f.cached > 0) seg('file', f.tokens - f.cached, `${f.path}: ${fmt(f.tokens)} tokens`);
  }
  seg('question', m.questionTokens, `question: ${fmt(m.questionTokens)} tokens`);
  seg('reserve', m.answerReserve, `answer reserve: ${fmt(m.answerReserve)} tokens`);
  // The attention window: the last `window` tokens before the answer, plus the sinks at the very start.
  const promptEnd = m.used - m.answerReserve;
  if (m.window !== null && m.window < promptEnd) {
    const w = el('div', 'window');
    w.style.left = pct(promptEnd - m.window);
    w.style.width = pct(m.window);
    w.title = `sliding window: the last ${fmt(m.window)} tokens are attended directly`;
    bar.append(w);
    if (m.sinks > 0) {
      const s = el('div', 'sinks');
      s.style.left = '0';
      s.style.width = pct(m.sinks);
      s.title = `${fmt(m.sinks)} sink tokens always attended`;
      bar.append(s);
    }
  }
  return bar;
}

function renderPassages(): void {
  passagesBox.replaceChildren();
  if (state.passages.length === 0) return;
  const title = el('h2', undefined, 'Passages');
  title.prepend(icon('references'));
  passagesBox.append(title);
  const list = el('ol', 'passage-list');
  list.setAttribute('role', 'listbox');
  list.setAttribute('aria-label', 'Ranked passages; Enter opens one in the editor');
  const top = state.passages.reduce((m, p) => Math.max(m, p.score), 0) || 1;
  for (const p of state.passages) {
    const li = el('li', 'passage');
    li.tabIndex = 0;
    li.setAttribute('role', 'option');
    li.dataset['index'] = String(p.index);
    const head = el('div', 'passage-head');
    const lines = p.startLine === p.endLine ? `${p.startLine + 1}` : `${p.startLine + 1}-${p.endLine + 1}`;
    const where = el('span', 'path', `${p.path}:${lines}`);
    where.prepend(icon('file'));
    head.append(where, el('span', 'score', `${(p.score * 100).toFixed(1)}%`));
    const bar = el('div', 'score-bar');
    const fill = el('div', 'fill');
    fill.style.width = `${((p.score / top) * 100).toFixed(1)}%`;
    bar.append(fill);
    li.append(head, bar, el('pre', 'snippet', p.snippet));
    const reveal = (): void => {
      if (state.askId) vscode.postMessage({ type: 'revealPassage', askId: state.askId, index: p.index });
    };
    li.addEventListener('click', reveal);
    li.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        reveal();
      } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        const next = (e.key === 'ArrowDown' ? li.nextElementSibling : li.previousElementSibling) as HTMLElement | null;
        next?.focus();
      } else if (e.key === 'Home' || e.key === 'End') {
        e.preventDefault();
        ((e.key === 'Home' ? list.firstElementChild : list.lastElementChild) as HTMLElement | null)?.focus();
      }
    });
    list.append(li);
  }
  passagesBox.append(list);
}

window.addEventListener('message', (e: MessageEvent<unknown>) => {
  if (isExtensionToWebviewMessage(e.data)) onMessage(e.data);
});

render();
vscode.postMessage({ type: 'ready' });
