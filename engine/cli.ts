#!/usr/bin/env node
// The `attend` command line: a table of subcommands over the engine's public API. `attend tokens` counts the tokens
// of files and folders against the model's context and sliding window. Add a subcommand by adding to `commands`.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from './config';
import { countDocuments, formatShare, shareOf } from './budget';
import { gatherSources, DEFAULT_MAX_FILE_BYTES } from './sources';
import { loadTokenizer } from './tokenizer';
import { evalCommand } from './eval/command';
import { askCommand } from './ask-command';
import {
  type CliContext,
  type Command,
  UsageError,
  displayPath,
  formatTable,
  parseCommandArgs,
  positiveInt,
  resolveModelDir,
} from './cli-common';

export { type CliIO, type CliContext, type Command, UsageError, DEFAULT_MODEL_DIR, resolveModelDir, formatTable } from './cli-common';

const tokensCommand: Command = {
  summary: 'count tokens of files and folders against the context and sliding window',
  usage:
    'attend tokens [--model DIR] [--context N] [--window N] [--max-bytes N] [--exclude PATTERN]... [--no-gitignore] [--json] FILE|DIR...',
  run(args, ctx) {
    const { values, positionals } = parseCommandArgs(args, {
      model: { type: 'string' },
      context: { type: 'string' },
      window: { type: 'string' },
      'max-bytes': { type: 'string' },
      exclude: { type: 'string', multiple: true },
      'no-gitignore': { type: 'boolean' },
      json: { type: 'boolean' },
    });
    if (positionals.length === 0) throw new UsageError('give at least one FILE or DIR');
    const contextOpt = positiveInt(values.context, '--context');
    const windowOpt = positiveInt(values.window, '--window');
    const maxFileBytes = positiveInt(values['max-bytes'], '--max-bytes') ?? DEFAULT_MAX_FILE_BYTES;

    const modelDir = resolveModelDir(values.model, ctx);
    const config = loadConfig(modelDir);
    const tokenizer = ctx.loadTokenizer(modelDir);
    const context = contextOpt ?? config.maxPositionEmbeddings;
    const window = windowOpt ?? config.slidingWindow;

    const { cwd } = ctx.io;
    const gathered = gatherSources(positionals, {
      cwd,
      maxFileBytes,
      exclude: values.exclude ?? [],
      gitignore: !values['no-gitignore'],
    });
    const counts = countDocuments(tokenizer, gathered.documents);
    const notFound = gathered.skipped.filter((s) => s.reason === 'not found');

    if (values.json) {
      ctx.io.stdout(
        JSON.stringify(
          {
            model: modelDir,
            context,
            window,
            files: counts.perFile.map((f) => ({ ...f, contextShare: shareOf(f.tokens, context), windowShare: shareOf(f.tokens, window) })),
            total: counts.total,
            contextShare: shareOf(counts.total, context),
            windowShare: shareOf(counts.total, window),
            skipped: gathered.skipped,
            ignored: gathered.ignored,
          },
          null,
          2,
        ) + '\n',
      );
      return notFound.length > 0 ? 1 : 0;
    }

    const header = ['file', 'tokens', 'context'];
    if (window !== null) header.push('window');
    const row = (name: string, tokens: number) => {
      const r = [name, tokens.toLocaleString('en-US'), formatShare(shareOf(tokens, context))];
      if (window !== null) r.push(formatShare(shareOf(tokens, window)));
      return r;
    };
    const rows = counts.perFile.map((f) => row(displayPath(f.path, cwd), f.tokens));
    rows.push(row(`total (${counts.perFile.length} file${counts.perFile.length === 1 ? '' : 's'})`, counts.total));
    let out = `model: ${displayPath(modelDir, cwd)} (${config.family}); context ${context.toLocaleString('en-US')} tokens; `;
    out += window !== null ? `sliding window ${window.toLocaleString('en-US')} tokens\n\n` : 'no sliding window\n\n';
    out += formatTable(header, rows, new Set([1, 2, 3]));

    const replaced = gathered.documents.filter((d) => d.invalidSequences > 0);
    if (replaced.length > 0) {
      out += '\nnot valid UTF-8 (invalid bytes counted as U+FFFD):\n';
      for (const d of replaced) out += `  ${displayPath(d.path, cwd)}: ${d.invalidSequences} invalid sequence(s)\n`;
    }
    if (gathered.skipped.length > 0) {
      out += `\nskipped ${gathered.skipped.length}:\n`;
      for (const s of gathered.skipped) out += `  ${displayPath(s.path, cwd)}: ${s.reason}\n`;
    }
    if (gathered.ignored.length > 0) {
      const shown = gathered.ignored.slice(0, 10).map((p) => displayPath(p, cwd));
      const more = gathered.ignored.length - shown.length;
      out += `\nignored by .gitignore/excludes: ${shown.join(', ')}${more > 0 ? ` and ${more} more` : ''}\n`;
    }
    ctx.io.stdout(out);
    return notFound.length > 0 ? 1 : 0;
  },
};

/** Subcommands by name. The runtime adds `ask` and `eval` here. */
export const commands = new Map<string, Command>([
  ['tokens', tokensCommand],
  ['ask', askCommand],
  ['eval', evalCommand],
]);

function usage(): string {
  const lines = ['usage: attend <command> [options]', '', 'commands:'];
  const width = Math.max(...[...commands.keys()].map((k) => k.length));
  for (const [name, cmd] of commands) lines.push(`  ${name.padEnd(width)}  ${cmd.summary}`);
  lines.push('', "run 'attend <command> --help' for a command's options");
  return lines.join('\n') + '\n';
}

/** Nearest folder above this file with a package.json: the repo root, or the installed package. */
export function findPackageRoot(from: string = __dirname): string | null {
  for (let d = from; ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'package.json'))) return d;
    if (path.dirname(d) === d) return null;
  }
}

/** Runs the CLI; returns the exit code. */
export async function main(argv: readonly string[], overrides: Partial<CliContext> = {}): Promise<number> {
  const ctx: CliContext = {
    io: overrides.io ?? { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s), cwd: process.cwd() },
    loadTokenizer: overrides.loadTokenizer ?? loadTokenizer,
    packageRoot: overrides.packageRoot !== undefined ? overrides.packageRoot : findPackageRoot(),
  };
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? ctx.io.stderr : ctx.io.stdout)(usage());
    return name === undefined ? 2 : 0;
  }
  const cmd = commands.get(name);
  if (!cmd) {
    ctx.io.stderr(`attend: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    ctx.io.stdout(`usage: ${cmd.usage}\n\n${cmd.summary}\n`);
    return 0;
  }
  try {
    return await cmd.run(rest, ctx);
  } catch (e) {
    if (e instanceof UsageError) {
      ctx.io.stderr(`attend ${name}: ${e.message}\nusage: ${cmd.usage}\n`);
      return 2;
    }
    ctx.io.stderr(`attend ${name}: error: ${(e as Error).message}\n`);
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`attend: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
