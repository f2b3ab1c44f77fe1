// What every `attend` subcommand shares: the context it runs in, usage errors, argument and table helpers.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Tokenizer } from './types';

export interface CliIO {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly cwd: string;
}

export interface CliContext {
  readonly io: CliIO;
  /** Injected so tests can run without the real tokenizer; defaults to engine/tokenizer's loadTokenizer. */
  readonly loadTokenizer: (dir: string) => Tokenizer;
  /** Folder holding the package.json, for the built-in model; null if not found. */
  readonly packageRoot: string | null;
}

export interface Command {
  readonly summary: string;
  readonly usage: string;
  /** Exit code: 0 ok, 1 failure, 2 usage error. */
  run(args: string[], ctx: CliContext): number | Promise<number>;
}

/** Thrown for bad command-line usage; main() prints it with the command's usage and exits 2. */
export class UsageError extends Error {}

export const DEFAULT_MODEL_DIR = path.join('models', 'attend-default');

/** The model folder: --model (relative to cwd) or the built-in model inside the package. */
export function resolveModelDir(modelOpt: string | undefined, ctx: CliContext): string {
  if (modelOpt !== undefined) {
    const dir = path.resolve(ctx.io.cwd, modelOpt);
    if (!fs.existsSync(path.join(dir, 'config.json'))) throw new Error(`${dir}: not a model folder (no config.json)`);
    return dir;
  }
  const builtin = ctx.packageRoot ? path.join(ctx.packageRoot, DEFAULT_MODEL_DIR) : null;
  if (builtin && fs.existsSync(path.join(builtin, 'config.json'))) return builtin;
  throw new Error(`no built-in model found${builtin ? ` at ${builtin}` : ''}; pass --model DIR (a Hugging Face model folder)`);
}

export function parseCommandArgs<T extends ParseArgsConfig['options']>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

export function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) <= 0 || !Number.isSafeInteger(Number(value))) {
    throw new UsageError(`${flag} must be a positive integer, got "${value}"`);
  }
  return Number(value);
}

/** A number >= 0 (`--memory-lexical-weight 8`, `--lexical-weight 0.5`), or undefined when the flag is absent. */
export function nonNegativeNumber(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+(\.\d+)?$/.test(value)) throw new UsageError(`${flag} must be a number >= 0, got "${value}"`);
  return Number(value);
}

/** An on|off switch as a boolean, or undefined when the flag is absent. */
export function onOff(value: string | undefined, flag: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (value !== 'on' && value !== 'off') throw new UsageError(`${flag} must be on or off, got "${value}"`);
  return value === 'on';
}

/** Renders rows as a plain-text table; columns listed in `right` are right-aligned. */
export function formatTable(header: string[], rows: string[][], right: ReadonlySet<number>): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => (right.has(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}

export function displayPath(p: string, cwd: string): string {
  const rel = path.relative(cwd, p);
  return rel === '' ? '.' : rel.startsWith('..') || path.isAbsolute(rel) ? p : rel;
}
