// Held-out filler text for the evaluation haystacks: Debian documentation that the training corpus never reads.
// engine/train/corpus.py trains on /usr/share/common-licenses/*, /usr/share/doc/*/copyright and man sections 1, 5, 7,
// and reserves man section 8, /usr/share/doc/*/README* and /usr/share/doc/*/changelog.Debian.gz for evaluation.
// We use the last two (plain text, no roff to strip). Files are read lazily, so building a few haystacks reads a few
// files, not all of them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import type { Rng } from './rng';

export const DEFAULT_DOC_ROOT = '/usr/share/doc';
const MAX_READ_BYTES = 400_000;
const MAX_CHARS = 60_000;
const MIN_CHARS = 200;

/** Filler text source. `texts` are already cleaned; an empty string means "unusable, pick another". */
export interface FillerCorpus {
  /** What the text is, for the report. */
  readonly description: string;
  /** Hash of the file list and sizes: two runs with the same seed agree iff this agrees. */
  readonly fingerprint: string;
  readonly size: number;
  /** Display name of item i (e.g. "bash/README"), used to name haystack documents. */
  name(i: number): string;
  text(i: number): string;
}

/** Same normalisation as the training corpus: LF newlines, tabs as 4 spaces, no control characters, at most one blank line. */
export function cleanText(raw: string): string {
  let t = raw.replace(/\r\n?/g, '\n').replace(/\t/g, '    ');
  // eslint-disable-next-line no-control-regex
  t = t.replace(/[\u0000-\u0009\u000b-\u001f\u007f]/g, '');
  t = t.replace(/ +\n/g, '\n').replace(/\n{3,}/g, '\n\n');
  return t.trim();
}

function decode(buf: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    return buf.toString('latin1');
  }
}

/** Lists the held-out files under a doc root (sorted, regular files only, no symlinks). */
export function heldOutFiles(root = DEFAULT_DOC_ROOT): string[] {
  let pkgs: string[];
  try {
    pkgs = fs.readdirSync(root).sort();
  } catch {
    return [];
  }
  const readmes: string[] = [];
  const changelogs: string[] = [];
  for (const pkg of pkgs) {
    const dir = path.join(root, pkg);
    let names: string[];
    try {
      if (!fs.lstatSync(dir).isDirectory()) continue;
      names = fs.readdirSync(dir).sort();
    } catch {
      continue;
    }
    for (const n of names) {
      const p = path.join(dir, n);
      if (!(n.startsWith('README') || n === 'changelog.Debian.gz')) continue;
      try {
        if (!fs.lstatSync(p).isFile()) continue;
      } catch {
        continue;
      }
      (n.startsWith('README') ? readmes : changelogs).push(p);
    }
  }
  // Same order as corpus.py: READMEs, then changelogs.
  return [...readmes, ...changelogs];
}

export class FileCorpus implements FillerCorpus {
  private readonly cache = new Map<number, string>();
  readonly fingerprint: string;

  constructor(
    private readonly files: readonly string[],
    private readonly root: string,
  ) {
    if (files.length === 0) throw new Error(`no held-out text found under ${root} (expected README* and changelog.Debian.gz files)`);
    const h = createHash('sha256');
    for (const f of files) {
      let size = -1;
      try {
        size = fs.statSync(f).size;
      } catch {
        // counted as missing
      }
      h.update(`${f}\0${size}\n`);
    }
    this.fingerprint = h.digest('hex').slice(0, 16);
  }

  static heldOut(root = DEFAULT_DOC_ROOT): FileCorpus {
    return new FileCorpus(heldOutFiles(root), root);
  }

  get description(): string {
    return `${this.files.length} held-out files under ${this.root} (README*, changelog.Debian.gz)`;
  }

  get size(): number {
    return this.files.length;
  }

  name(i: number): string {
    return path.relative(this.root, this.files[i]).replace(/\.gz$/, '');
  }

  text(i: number): string {
    const hit = this.cache.get(i);
    if (hit !== undefined) return hit;
    let t = '';
    try {
      const f = this.files[i];
      const fd = fs.openSync(f, 'r');
      let raw: Buffer;
      try {
        const buf = Buffer.alloc(Math.min(fs.fstatSync(fd).size, f.endsWith('.gz') ? 4 * MAX_READ_BYTES : MAX_READ_BYTES));
        const n = fs.readSync(fd, buf, 0, buf.length, 0);
        raw = buf.subarray(0, n);
      } finally {
        fs.closeSync(fd);
      }
      if (f.endsWith('.gz')) raw = zlib.gunzipSync(raw, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
      t = cleanText(decode(raw.subarray(0, MAX_READ_BYTES))).slice(0, MAX_CHARS);
      if (t.length < MIN_CHARS) t = '';
    } catch {
      t = '';
    }
    this.cache.set(i, t);
    return t;
  }
}

/** In-memory corpus, for tests and for machines without the Debian docs. */
export class TextCorpus implements FillerCorpus {
  readonly fingerprint: string;
  constructor(
    private readonly items: readonly { name: string; text: string }[],
    readonly description = `${items.length} in-memory texts`,
  ) {
    this.fingerprint = createHash('sha256')
      .update(items.map((x) => x.name + '\0' + x.text).join('\0'))
      .digest('hex')
      .slice(0, 16);
  }
  get size(): number {
    return this.items.length;
  }
  name(i: number): string {
    return this.items[i].name;
  }
  text(i: number): string {
    const t = cleanText(this.items[i].text);
    return t.length >= 40 ? t : '';
  }
}

/** A contiguous, line-aligned chunk of about `nchars` characters from a random usable text, and its source name. */
export function chunk(corpus: FillerCorpus, rng: Rng, nchars: number): { name: string; text: string } {
  for (let attempt = 0; attempt < 50; attempt++) {
    const i = rng.int(0, corpus.size - 1);
    const t = corpus.text(i);
    if (!t) continue;
    let start = rng.int(0, Math.max(0, t.length - nchars));
    const nl = t.lastIndexOf('\n', start);
    start = nl < 0 ? 0 : nl + 1;
    let s = t.slice(start, start + nchars);
    const cut = s.lastIndexOf('\n');
    if (start + nchars < t.length && cut > nchars * 0.5) s = s.slice(0, cut);
    s = s.trim();
    if (s.length >= 40) return { name: corpus.name(i), text: s };
  }
  throw new Error(`${corpus.description}: no usable text found after 50 tries`);
}

/** Filler of at least `nchars` characters made of chunks separated by blank lines; names the first chunk's source. */
export function filler(corpus: FillerCorpus, rng: Rng, nchars: number): { name: string; text: string } {
  const parts: string[] = [];
  let name = '';
  let n = 0;
  while (n < nchars) {
    const c = chunk(corpus, rng, rng.int(400, 3000));
    if (!name) name = c.name;
    parts.push(c.text);
    n += c.text.length + 2;
  }
  return { name, text: parts.join('\n\n') };
}
