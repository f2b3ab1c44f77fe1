// Gathers text documents from files and folders: .gitignore-style excludes, text decoding (UTF-8, UTF-16 with BOM),
// and an explicit `skipped` list for everything left out (binary, too large, unreadable, symlink loops) - never silent.
// Pure pieces (IgnoreRules, decodeText) are exported for the extension, which reads bytes through its own API.

import * as fs from 'node:fs';
import * as path from 'node:path';

// ---------------------------------------------------------------------------------------------------------------
// .gitignore patterns (https://git-scm.com/docs/gitignore)

interface IgnoreRule {
  readonly source: string;
  readonly negate: boolean;
  readonly dirOnly: boolean;
  readonly regex: RegExp;
}

function globToRegex(glob: string): string {
  let re = '';
  let i = 0;
  while (i < glob.length) {
    const c = glob[i];
    if (c === '*') {
      if (glob[i + 1] === '*') {
        const atStart = i === 0 || glob[i - 1] === '/';
        const atEnd = i + 2 === glob.length;
        const slashAfter = glob[i + 2] === '/';
        if (atStart && slashAfter) {
          re += '(?:.*/)?'; // "**/": zero or more directories
          i += 3;
          continue;
        }
        if (atStart && atEnd) {
          re += '.*'; // "/**" (everything inside) or a lone "**"
          i += 2;
          continue;
        }
        // Other runs of asterisks are ordinary asterisks.
        while (glob[i] === '*') i++;
        re += '[^/]*';
        continue;
      }
      re += '[^/]*';
      i++;
    } else if (c === '?') {
      re += '[^/]';
      i++;
    } else if (c === '[') {
      const close = findClassEnd(glob, i);
      if (close < 0) {
        re += '\\[';
        i++;
        continue;
      }
      let body = glob.slice(i + 1, close);
      let negated = false;
      if (body[0] === '!' || body[0] === '^') {
        negated = true;
        body = body.slice(1);
      }
      const escaped = body.replace(/\\(.)/g, '$1').replace(/[\\\]^]/g, '\\$&');
      re += negated ? `[^/${escaped}]` : `(?!/)[${escaped}]`;
      i = close + 1;
    } else if (c === '\\' && i + 1 < glob.length) {
      re += escapeRegex(glob[i + 1]);
      i += 2;
    } else {
      re += escapeRegex(c);
      i++;
    }
  }
  return re;
}

function findClassEnd(glob: string, open: number): number {
  let j = open + 1;
  if (glob[j] === '!' || glob[j] === '^') j++;
  if (glob[j] === ']') j++; // a leading ']' is literal
  for (; j < glob.length; j++) {
    if (glob[j] === '\\') j++;
    else if (glob[j] === ']') return j;
  }
  return -1;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

function parseLine(raw: string): IgnoreRule | null {
  let line = raw.replace(/\r$/, '');
  // Trailing spaces are dropped unless escaped with a backslash.
  line = line.replace(/(?<!\\)( +)$/, '');
  if (line === '' || line.startsWith('#')) return null;
  let negate = false;
  if (line.startsWith('!')) {
    negate = true;
    line = line.slice(1);
  } else if (line.startsWith('\\!') || line.startsWith('\\#')) {
    line = line.slice(1);
  }
  let dirOnly = false;
  if (line.endsWith('/') && !line.endsWith('\\/')) {
    dirOnly = true;
    line = line.replace(/\/+$/, '');
  }
  if (line === '') return null;
  // A slash at the start or in the middle anchors the pattern to the .gitignore's folder.
  const anchored = line.includes('/');
  if (line.startsWith('/')) line = line.slice(1);
  const body = globToRegex(line);
  const regex = new RegExp(`^${anchored ? '' : '(?:.*/)?'}${body}$`);
  return { source: raw, negate, dirOnly, regex };
}

/** The rules of one .gitignore (or an exclude list), relative to one folder. */
export class IgnoreRules {
  private readonly rules: IgnoreRule[];

  constructor(patterns: string | readonly string[]) {
    const lines = typeof patterns === 'string' ? patterns.split('\n') : patterns;
    this.rules = lines.map(parseLine).filter((r): r is IgnoreRule => r !== null);
  }

  get size(): number {
    return this.rules.length;
  }

  /**
   * `relPath` uses '/' and is relative to the rules' folder. Returns true (ignored), false (re-included by a `!`
   * pattern) or undefined (no pattern matched). The last matching pattern wins.
   */
  match(relPath: string, isDir: boolean): boolean | undefined {
    let result: boolean | undefined;
    for (const r of this.rules) {
      if (r.dirOnly && !isDir) continue;
      if (r.regex.test(relPath)) result = !r.negate;
    }
    return result;
  }
}

export const DEFAULT_EXCLUDES: readonly string[] = ['.git', 'node_modules/', '.hg/', '.svn/'];

interface IgnoreLevel {
  readonly base: string;
  readonly rules: IgnoreRules;
}

/** Deeper (later) levels override earlier ones, as a subfolder's .gitignore overrides its parent's. */
function isIgnored(levels: readonly IgnoreLevel[], absPath: string, isDir: boolean): boolean {
  let result: boolean | undefined;
  for (const { base, rules } of levels) {
    const rel = path.relative(base, absPath);
    if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) continue;
    const r = rules.match(rel.split(path.sep).join('/'), isDir);
    if (r !== undefined) result = r;
  }
  return result === true;
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding

export type TextEncodingName = 'utf-8' | 'utf-16le' | 'utf-16be';

export type Decoded =
  | {
      readonly kind: 'text';
      readonly text: string;
      readonly encoding: TextEncodingName;
      readonly bom: boolean;
      readonly invalidSequences: number;
    }
  | { readonly kind: 'binary'; readonly reason: string };

/** Bytes sniffed for binary content. */
export const SNIFF_BYTES = 8192;
/** More invalid UTF-8 sequences than this share of the sniffed bytes means binary (or a legacy encoding). */
export const MAX_INVALID_RATIO = 0.1;

/**
 * Counts invalid UTF-8 sequences in bytes [0, end). With `allowTruncatedTail`, a sequence cut off by `end` is not
 * counted (the sample may end mid-character).
 */
export function countInvalidUtf8(bytes: Uint8Array, end = bytes.length, allowTruncatedTail = false): number {
  let invalid = 0;
  let i = 0;
  while (i < end) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0;
      else if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      else if (b === 0xf4) hi = 0x8f;
    } else {
      invalid++;
      i++;
      continue;
    }
    let j = 1;
    for (; j <= need; j++) {
      if (i + j >= end) break;
      const c = bytes[i + j];
      if (c < (j === 1 ? lo : 0x80) || c > (j === 1 ? hi : 0xbf)) break;
    }
    if (j > need) {
      i += need + 1;
    } else if (i + j >= end && allowTruncatedTail) {
      break;
    } else {
      invalid++;
      i += j; // the valid prefix is one replacement, as WHATWG decoders do
    }
  }
  return invalid;
}

function decodeUtf16(bytes: Uint8Array, bigEndian: boolean): string {
  let body = bytes.subarray(2);
  if (bigEndian) {
    const swapped = new Uint8Array(body.length);
    for (let i = 0; i + 1 < body.length; i += 2) {
      swapped[i] = body[i + 1];
      swapped[i + 1] = body[i];
    }
    if (body.length % 2 === 1) swapped[body.length - 1] = body[body.length - 1];
    body = swapped;
  }
  return new TextDecoder('utf-16le', { fatal: false, ignoreBOM: true }).decode(body);
}

/** Decodes file bytes as text, or says why they look binary. A UTF-8 BOM is stripped. */
export function decodeText(bytes: Uint8Array): Decoded {
  if (bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xfe) {
    return { kind: 'text', text: decodeUtf16(bytes, false), encoding: 'utf-16le', bom: true, invalidSequences: 0 };
  }
  if (bytes.length >= 2 && bytes[0] === 0xfe && bytes[1] === 0xff) {
    return { kind: 'text', text: decodeUtf16(bytes, true), encoding: 'utf-16be', bom: true, invalidSequences: 0 };
  }
  const bom = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
  const sniffEnd = Math.min(bytes.length, SNIFF_BYTES);
  if (bytes.subarray(0, sniffEnd).includes(0))
    return { kind: 'binary', reason: `binary (NUL bytes in the first ${SNIFF_BYTES / 1024} KB)` };
  const sampleInvalid = countInvalidUtf8(bytes, sniffEnd, sniffEnd < bytes.length);
  if (sampleInvalid > 0 && sampleInvalid / sniffEnd > MAX_INVALID_RATIO) {
    return { kind: 'binary', reason: `binary or not UTF-8 (${sampleInvalid} invalid UTF-8 sequences in the first ${sniffEnd} bytes)` };
  }
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return { kind: 'text', text, encoding: 'utf-8', bom, invalidSequences: 0 };
  } catch {
    const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
    return { kind: 'text', text, encoding: 'utf-8', bom, invalidSequences: countInvalidUtf8(bytes) };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Gathering

export interface SourceDocument {
  /** Absolute path as reached (symlinks not resolved). */
  readonly path: string;
  readonly text: string;
  readonly bytes: number;
  readonly encoding: TextEncodingName;
  /** Invalid UTF-8 sequences replaced by U+FFFD (0 for clean text). */
  readonly invalidSequences: number;
}

export interface SkippedSource {
  readonly path: string;
  readonly reason: string;
}

export interface GatherOptions {
  /** Files larger than this are skipped (default 8 MiB). */
  readonly maxFileBytes?: number;
  /** Extra gitignore-style patterns, relative to each folder given as input; they override .gitignore files. */
  readonly exclude?: readonly string[];
  /** Honour .gitignore files (default true), including those of enclosing folders up to the git root. */
  readonly gitignore?: boolean;
  /** Base for relative inputs (default process.cwd()). */
  readonly cwd?: string;
}

export interface GatherResult {
  readonly documents: SourceDocument[];
  readonly skipped: SkippedSource[];
  /** Files and folders left out by ignore rules (folders are not descended, so their contents are not listed). */
  readonly ignored: string[];
}

export const DEFAULT_MAX_FILE_BYTES = 8 * 1024 * 1024;

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
}

function findGitRoot(dir: string): string | null {
  for (let d = dir; ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, '.git'))) return d;
    if (path.dirname(d) === d) return null;
  }
}

function readGitignore(dir: string): IgnoreLevel | null {
  const file = path.join(dir, '.gitignore');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const rules = new IgnoreRules(text);
  return rules.size > 0 ? { base: dir, rules } : null;
}

/**
 * Collects documents from files and folders, in input order, folders walked in sorted name order. Files named
 * directly are never filtered by ignore rules. Symlinks are followed; each real file is read once.
 */
/** Up to `limit` bytes of a file (fewer when it is shorter), never more, whatever its size is by now. */
function readAtMost(file: string, limit: number): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    while (total < limit) {
      const chunk = Buffer.allocUnsafe(Math.min(limit - total, 1 << 20));
      const n = fs.readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(n === chunk.length ? chunk : chunk.subarray(0, n));
      total += n;
    }
    return Buffer.concat(chunks, total);
  } finally {
    fs.closeSync(fd);
  }
}

export function gatherSources(inputs: readonly string[], opts: GatherOptions = {}): GatherResult {
  const cwd = opts.cwd ?? process.cwd();
  const maxBytes = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  const useGitignore = opts.gitignore ?? true;
  const documents: SourceDocument[] = [];
  const skipped: SkippedSource[] = [];
  const ignored: string[] = [];
  const seenFiles = new Map<string, string>(); // real path -> first path reached
  const seenDirs = new Map<string, string>();

  const addFile = (abs: string, stat: fs.Stats): void => {
    let real: string;
    try {
      real = fs.realpathSync(abs);
    } catch (e) {
      skipped.push({ path: abs, reason: `unreadable (${errCode(e)})` });
      return;
    }
    const first = seenFiles.get(real);
    if (first !== undefined) {
      skipped.push({ path: abs, reason: `same file as ${first}` });
      return;
    }
    seenFiles.set(real, abs);
    if (stat.size > maxBytes) {
      skipped.push({ path: abs, reason: `too large (${formatBytes(stat.size)} > limit ${formatBytes(maxBytes)})` });
      return;
    }
    let bytes: Buffer;
    try {
      bytes = readAtMost(abs, maxBytes + 1);
    } catch (e) {
      skipped.push({ path: abs, reason: `unreadable (${errCode(e)})` });
      return;
    }
    if (bytes.length > maxBytes) {
      // It grew between the stat and the read: the limit holds for what is read, not only for what was listed.
      skipped.push({ path: abs, reason: `too large (grew past the limit ${formatBytes(maxBytes)} while being read)` });
      return;
    }
    const decoded = decodeText(bytes);
    if (decoded.kind === 'binary') {
      skipped.push({ path: abs, reason: decoded.reason });
      return;
    }
    documents.push({
      path: abs,
      text: decoded.text,
      bytes: bytes.length,
      encoding: decoded.encoding,
      invalidSequences: decoded.invalidSequences,
    });
  };

  const walk = (dir: string, levels: IgnoreLevel[], ancestors: Set<string>): void => {
    let real: string;
    try {
      real = fs.realpathSync(dir);
    } catch (e) {
      skipped.push({ path: dir, reason: `unreadable (${errCode(e)})` });
      return;
    }
    if (ancestors.has(real)) {
      skipped.push({ path: dir, reason: `symlink loop (points back to ${real})` });
      return;
    }
    const firstDir = seenDirs.get(real);
    if (firstDir !== undefined) {
      skipped.push({ path: dir, reason: `same folder as ${firstDir}` });
      return;
    }
    seenDirs.set(real, dir);
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (e) {
      skipped.push({ path: dir, reason: `unreadable folder (${errCode(e)})` });
      return;
    }
    const own = useGitignore ? readGitignore(dir) : null;
    const here = own ? [...levels.slice(0, levels.length - 1), own, levels[levels.length - 1]] : levels;
    const inner = new Set(ancestors).add(real);
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const abs = path.join(dir, entry.name);
      let stat: fs.Stats;
      try {
        stat = entry.isSymbolicLink() ? fs.statSync(abs) : fs.lstatSync(abs);
      } catch (e) {
        if (entry.isSymbolicLink() && errCode(e) === 'ENOENT') skipped.push({ path: abs, reason: 'broken symlink' });
        else if (errCode(e) === 'ELOOP') skipped.push({ path: abs, reason: 'symlink loop' });
        else skipped.push({ path: abs, reason: `unreadable (${errCode(e)})` });
        continue;
      }
      const isDir = stat.isDirectory();
      if (isIgnored(here, abs, isDir)) {
        ignored.push(abs);
        continue;
      }
      if (isDir) walk(abs, here, inner);
      else if (stat.isFile()) addFile(abs, stat);
      else skipped.push({ path: abs, reason: 'not a regular file' });
    }
  };

  for (const input of inputs) {
    const abs = path.resolve(cwd, input);
    let stat: fs.Stats;
    try {
      stat = fs.statSync(abs);
    } catch (e) {
      const code = errCode(e);
      skipped.push({ path: abs, reason: code === 'ENOENT' ? 'not found' : code === 'ELOOP' ? 'symlink loop' : `unreadable (${code})` });
      continue;
    }
    if (stat.isFile()) {
      addFile(abs, stat);
      continue;
    }
    if (!stat.isDirectory()) {
      skipped.push({ path: abs, reason: 'not a regular file' });
      continue;
    }
    // Levels, lowest precedence first: default excludes, enclosing .gitignores (git root down), then the user's
    // excludes last. walk() inserts each folder's own .gitignore just below the user's excludes.
    const levels: IgnoreLevel[] = [{ base: abs, rules: new IgnoreRules(DEFAULT_EXCLUDES) }];
    if (useGitignore) {
      const root = findGitRoot(abs);
      if (root !== null && root !== abs) {
        const chain: string[] = [];
        for (let d = path.dirname(abs); ; d = path.dirname(d)) {
          chain.unshift(d);
          if (d === root) break;
        }
        for (const d of chain) {
          const level = readGitignore(d);
          if (level) levels.push(level);
        }
      }
    }
    levels.push({ base: abs, rules: new IgnoreRules(opts.exclude ?? []) });
    walk(abs, levels, new Set());
  }
  return { documents, skipped, ignored };
}
