// Which workspace files "Ask About Workspace" reads: attend.include globs, minus files.exclude, search.exclude and
// attend.exclude (VS Code glob syntax), minus .gitignore rules (git syntax, via engine/sources). Pure: no `vscode`.

import { IgnoreRules } from '../engine/sources';

/** VS Code glob -> RegExp over '/'-separated relative paths: `**`, `*`, `?`, `{a,b}` (nestable), `[...]`. */
export function globToRegExp(glob: string): RegExp {
  let i = 0;
  const parse = (inBraces: boolean): string => {
    let re = '';
    while (i < glob.length) {
      const c = glob[i];
      if (inBraces && (c === ',' || c === '}')) return re;
      if (c === '*') {
        if (glob[i + 1] === '*') {
          const atStart = i === 0 || glob[i - 1] === '/' || glob[i - 1] === '{' || glob[i - 1] === ',';
          i += 2;
          if (atStart && glob[i] === '/') {
            i++;
            re += '(?:.*/)?'; // "**/": any number of folders
          } else re += '.*';
          continue;
        }
        re += '[^/]*';
        i++;
      } else if (c === '?') {
        re += '[^/]';
        i++;
      } else if (c === '{') {
        i++;
        const alts: string[] = [];
        for (;;) {
          alts.push(parse(true));
          if (i >= glob.length) break; // unclosed: treat what we have as alternatives
          if (glob[i] === '}') {
            i++;
            break;
          }
          i++; // ','
        }
        re += `(?:${alts.join('|')})`;
      } else if (c === '[') {
        const close = glob.indexOf(']', i + 2);
        if (close < 0) {
          re += '\\[';
          i++;
          continue;
        }
        let body = glob.slice(i + 1, close);
        const negated = body[0] === '!' || body[0] === '^';
        if (negated) body = body.slice(1);
        re += `[${negated ? '^' : ''}${body.replace(/[\\\]]/g, '\\$&')}]`;
        i = close + 1;
      } else {
        re += c.replace(/[.+^${}()|\\]/g, '\\$&');
        i++;
      }
    }
    return re;
  };
  return new RegExp(`^${parse(false)}$`);
}

export class GlobSet {
  private readonly regexes: RegExp[];
  constructor(readonly patterns: readonly string[]) {
    this.regexes = patterns.map((p) => globToRegExp(normalizeGlob(p)));
  }
  /** True when the path, or a folder above it, matches (so "**\/node_modules" covers everything inside). */
  matches(relPath: string): boolean {
    if (this.regexes.length === 0) return false;
    const parts = relPath.split('/');
    for (let n = parts.length; n >= 1; n--) {
      const prefix = parts.slice(0, n).join('/');
      if (this.regexes.some((r) => r.test(prefix))) return true;
    }
    return false;
  }
}

function normalizeGlob(p: string): string {
  return p.replace(/\\/g, '/').replace(/^\.\//, '').replace(/\/+$/, '');
}

/** The enabled patterns of a files.exclude / search.exclude object (`true` entries; `when` clauses are not evaluated). */
export function enabledPatterns(setting: unknown): string[] {
  if (typeof setting !== 'object' || setting === null) return [];
  return Object.entries(setting as Record<string, unknown>)
    .filter(([, v]) => v === true)
    .map(([k]) => k);
}

export interface WorkspaceFilter {
  readonly include: readonly string[];
  readonly exclude: readonly string[];
}

/** attend.include (default: everything) and the union of the three exclude settings. */
export function workspaceFilter(settings: {
  readonly attendInclude: readonly string[];
  readonly attendExclude: readonly string[];
  readonly filesExclude: unknown;
  readonly searchExclude: unknown;
}): WorkspaceFilter {
  const include = settings.attendInclude.filter((p) => p.trim() !== '');
  const exclude = [
    ...enabledPatterns(settings.filesExclude),
    ...enabledPatterns(settings.searchExclude),
    ...settings.attendExclude.filter((p) => p.trim() !== ''),
  ];
  return { include: include.length > 0 ? include : ['**/*'], exclude: [...new Set(exclude)] };
}

/**
 * The exclude glob to hand findFiles so the search skips big folders early. VS Code's glob has no nested braces, so
 * only brace-free patterns are joined; every pattern is checked again afterwards with GlobSet.
 */
export function findFilesExclude(exclude: readonly string[]): string | null {
  const simple = exclude.filter((p) => !/[{},]/.test(p));
  if (simple.length === 0) return null;
  return simple.length === 1 ? simple[0] : `{${simple.join(',')}}`;
}

/** One .gitignore: its folder relative to the workspace root ('' for the root) and its text. */
export interface GitignoreFile {
  readonly dir: string;
  readonly text: string;
}

/** .gitignore rules of a workspace folder; deeper files override shallower ones, and an ignored folder hides its contents. */
export class GitignoreSet {
  private readonly levels: { readonly dir: string; readonly rules: IgnoreRules }[];

  constructor(files: readonly GitignoreFile[]) {
    this.levels = files
      .map((f) => ({ dir: normalizeGlob(f.dir), rules: new IgnoreRules(f.text) }))
      .filter((l) => l.rules.size > 0)
      .sort((a, b) => depth(a.dir) - depth(b.dir));
  }

  ignores(relPath: string): boolean {
    const parts = relPath.split('/');
    for (let n = 1; n <= parts.length; n++) {
      if (this.check(parts.slice(0, n).join('/'), n < parts.length)) return true;
    }
    return false;
  }

  private check(path: string, isDir: boolean): boolean {
    let result: boolean | undefined;
    for (const { dir, rules } of this.levels) {
      if (dir !== '' && !path.startsWith(`${dir}/`)) continue;
      const r = rules.match(dir === '' ? path : path.slice(dir.length + 1), isDir);
      if (r !== undefined) result = r;
    }
    return result === true;
  }
}

function depth(dir: string): number {
  return dir === '' ? 0 : dir.split('/').length;
}

/** Why a workspace path is not read, or null when it is. */
export function excludedBecause(relPath: string, excludes: GlobSet, gitignore: GitignoreSet | null): string | null {
  if (excludes.matches(relPath)) return 'excluded by files.exclude / search.exclude / attend.exclude';
  if (gitignore?.ignores(relPath)) return 'ignored by .gitignore';
  return null;
}
