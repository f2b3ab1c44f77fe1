// Reads the attend.* settings once per use. The model path is machine-scoped and, in an untrusted workspace, only the
// user (global) value counts: a workspace must not be able to point the engine at a folder of its choosing.

import * as path from 'node:path';
import * as vscode from 'vscode';
import { chooseModelPath } from './modelSetting';
import { MAX_BLOCK_SIZE, MAX_LEXICAL_WEIGHT, MAX_MEMORY_TOP_K, MIN_BLOCK_SIZE } from '../engine/protocol';

export const SECTION = 'attend';

export interface AttendSettings {
  /** Absolute model folder (the built-in one when attend.model.path is empty). */
  readonly modelDir: string;
  readonly modelIsBuiltIn: boolean;
  /** A workspace value of attend.model.path was ignored because the workspace is not trusted. */
  readonly ignoredWorkspaceModelPath: string | null;
  readonly contextBudget: number | null;
  readonly window: number | null;
  readonly sinkTokens: number | null;
  readonly maxNewTokens: number;
  readonly include: readonly string[];
  readonly exclude: readonly string[];
  readonly cacheMaxSizeMB: number;
  readonly cacheLocation: string;
  /** null: the engine's defaults (not sent). */
  readonly cacheBlockSize: number | null;
  readonly memoryTopK: number | null;
  readonly memoryLexicalWeight: number | null;
  /** attend.memory.secondReading: null = the engine's default. */
  readonly memorySecondReading: boolean | null;
  /** attend.answer.quote: null = the model's default ("auto"). */
  readonly quote: boolean | null;
}

function positiveOrNull(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : null;
}

function natOrNull(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null;
}

function numberOrNull(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** v when within [lo, hi], else null (the engine's default): an out-of-range value from settings.json is ignored. */
function inRange(v: number | null, lo: number, hi: number): number | null {
  return v !== null && v >= lo && v <= hi ? v : null;
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : [];
}

export function builtInModelDir(extensionPath: string): string {
  return path.join(extensionPath, 'models', 'attend-default');
}

export function readSettings(extensionPath: string, globalStoragePath: string): AttendSettings {
  const cfg = vscode.workspace.getConfiguration(SECTION);
  const trusted = vscode.workspace.isTrusted;
  const { raw, ignoredWorkspaceValue } = chooseModelPath(cfg.inspect<string>('model.path'), cfg.get<string>('model.path', ''), trusted);
  const modelDir = raw === '' ? builtInModelDir(extensionPath) : expandHome(raw);
  const cacheLocation = (cfg.get<string>('cache.location', '') ?? '').trim();
  return {
    modelDir,
    modelIsBuiltIn: raw === '',
    ignoredWorkspaceModelPath: ignoredWorkspaceValue,
    contextBudget: positiveOrNull(cfg.get('contextBudget')),
    window: positiveOrNull(cfg.get('window')),
    sinkTokens: natOrNull(cfg.get('sinkTokens')),
    maxNewTokens: positiveOrNull(cfg.get('maxNewTokens')) ?? 256,
    include: strings(cfg.get('include')),
    exclude: strings(cfg.get('exclude')),
    cacheMaxSizeMB: natOrNull(cfg.get('cache.maxSizeMB')) ?? 2048,
    cacheLocation: cacheLocation === '' ? path.join(globalStoragePath, 'kv-cache') : expandHome(cacheLocation),
    cacheBlockSize: inRange(positiveOrNull(cfg.get('cache.blockSize')), MIN_BLOCK_SIZE, MAX_BLOCK_SIZE),
    memoryTopK: inRange(natOrNull(cfg.get('memory.topK')), 0, MAX_MEMORY_TOP_K),
    memoryLexicalWeight: inRange(numberOrNull(cfg.get('memory.lexicalWeight')), 0, MAX_LEXICAL_WEIGHT),
    memorySecondReading: typeof cfg.get('memory.secondReading') === 'boolean' ? (cfg.get('memory.secondReading') as boolean) : null,
    quote: ({ on: true, off: false } as Record<string, boolean>)[String(cfg.get('answer.quote'))] ?? null,
  };
}

function expandHome(p: string): string {
  if (p === '~' || p.startsWith('~/') || p.startsWith('~\\'))
    return path.join(process.env['HOME'] ?? process.env['USERPROFILE'] ?? '', p.slice(1));
  return path.resolve(p);
}
