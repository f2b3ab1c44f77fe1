// Renders chat messages with the model's own Jinja chat template (tokenizer_config.json `chat_template`, or a
// `chat_template.jinja` file next to it), the way transformers' apply_chat_template does.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import type { ChatMessage } from './types';

type Json = Record<string, unknown>;

/** Where a config returned by loadChatTemplate came from, for error messages. */
const sources = new WeakMap<object, string>();

function isObj(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The folder's tokenizer_config.json with its chat template (a sibling chat_template.jinja fills in a missing
 * `chat_template`), or null when the folder has no template at all.
 */
export function loadChatTemplate(dir: string): Json | null {
  const cfgFile = join(dir, 'tokenizer_config.json');
  const jinjaFile = join(dir, 'chat_template.jinja');
  let config: Json = {};
  let source = `tokenizer_config.json in ${dir}`;
  if (existsSync(cfgFile)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(cfgFile, 'utf8'));
    } catch (e) {
      throw new Error(`${source}: invalid JSON: ${(e as Error).message}`);
    }
    if (!isObj(parsed)) throw new Error(`${source}: not a JSON object`);
    config = parsed;
  }
  if (config.chat_template === undefined && existsSync(jinjaFile)) {
    config = { ...config, chat_template: readFileSync(jinjaFile, 'utf8') };
    source = `chat_template.jinja in ${dir}`;
  }
  if (config.chat_template === undefined || config.chat_template === null) return null;
  sources.set(config, source);
  return config;
}

/**
 * The prompt text for `messages`. With a null config (or one without a template) a plain fallback is used:
 * "System: …\n\nUser: …\n\n" and, with a generation prompt, "Assistant:".
 * Special-token text in the result is meant to be encoded with allowSpecial.
 */
export function renderChat(tokenizerConfig: unknown, messages: ChatMessage[], opts: { addGenerationPrompt: boolean }): string {
  const source = (isObj(tokenizerConfig) && sources.get(tokenizerConfig)) || 'tokenizer_config.json';
  const template = pickTemplate(tokenizerConfig, source);
  if (template === null) return plainChat(messages, opts.addGenerationPrompt);
  const cfg = isObj(tokenizerConfig) ? tokenizerConfig : {};
  let compiled: Template;
  try {
    compiled = new Template(template);
  } catch (e) {
    throw new Error(`${source}: chat template does not parse: ${(e as Error).message}`);
  }
  // raise_exception and strftime_now come with @huggingface/jinja's environment.
  const context: Record<string, unknown> = {
    messages: messages.map((m) => ({ role: m.role, content: m.content })),
    add_generation_prompt: opts.addGenerationPrompt,
    bos_token: tokenText(cfg.bos_token),
    eos_token: tokenText(cfg.eos_token),
    unk_token: tokenText(cfg.unk_token),
    pad_token: tokenText(cfg.pad_token),
  };
  if (Array.isArray(cfg.additional_special_tokens)) {
    context.additional_special_tokens = cfg.additional_special_tokens.map(tokenText);
  }
  try {
    return compiled.render(context);
  } catch (e) {
    throw new Error(`${source}: chat template failed to render: ${(e as Error).message}`);
  }
}

/** `chat_template` is a string or a list of {name, template}; the one named "default" is the chat one. */
function pickTemplate(config: unknown, source: string): string | null {
  if (!isObj(config)) return null;
  const t = config.chat_template;
  if (t === undefined || t === null) return null;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t.filter(isObj);
    const chosen = named.find((x) => x.name === 'default') ?? named[0];
    if (chosen && typeof chosen.template === 'string') return chosen.template;
  }
  throw new Error(`${source}: chat_template is neither a string nor a list of {name, template}`);
}

function tokenText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (isObj(v) && typeof v.content === 'string') return v.content;
  return '';
}

function plainChat(messages: ChatMessage[], addGenerationPrompt: boolean): string {
  const label = { system: 'System', user: 'User', assistant: 'Assistant' } as const;
  let out = messages.map((m) => `${label[m.role]}: ${m.content}\n\n`).join('');
  if (addGenerationPrompt) out += 'Assistant:';
  return out;
}
