import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { IgnoreRules, countInvalidUtf8, decodeText, gatherSources, SNIFF_BYTES } from '../../engine/sources';

function ignored(patterns: string, rel: string, isDir = false): boolean | undefined {
  return new IgnoreRules(patterns).match(rel, isDir);
}

test('gitignore: unanchored patterns match at any depth; a slash anchors', () => {
  assert.equal(ignored('*.log', 'a.log'), true);
  assert.equal(ignored('*.log', 'deep/dir/b.log'), true);
  assert.equal(ignored('*.log', 'a.logx'), undefined);
  assert.equal(ignored('/build', 'build', true), true);
  assert.equal(ignored('/build', 'src/build', true), undefined);
  assert.equal(ignored('doc/*.txt', 'doc/a.txt'), true);
  assert.equal(ignored('doc/*.txt', 'doc/x/a.txt'), undefined);
  assert.equal(ignored('doc/*.txt', 'x/doc/a.txt'), undefined);
  assert.equal(ignored('foo', 'a/foo/b', false), undefined, 'a pattern matches whole names, not prefixes');
  assert.equal(ignored('foo', 'a/foo', true), true);
});

test('gitignore: dir-only patterns, ** forms, wildcards and classes', () => {
  assert.equal(ignored('build/', 'build', true), true);
  assert.equal(ignored('build/', 'src/build', true), true);
  assert.equal(ignored('build/', 'build', false), undefined);
  assert.equal(ignored('**/foo', 'foo'), true);
  assert.equal(ignored('**/foo', 'a/b/foo'), true);
  assert.equal(ignored('**/foo/bar', 'x/foo/bar'), true);
  assert.equal(ignored('a/**/b', 'a/b'), true);
  assert.equal(ignored('a/**/b', 'a/x/y/b'), true);
  assert.equal(ignored('a/**/b', 'c/a/x/b'), undefined);
  assert.equal(ignored('abc/**', 'abc/x/y'), true);
  assert.equal(ignored('abc/**', 'abc', true), undefined);
  assert.equal(ignored('a*c', 'abbc'), true);
  assert.equal(ignored('a*c', 'ab/c'), undefined);
  assert.equal(ignored('a?c', 'abc'), true);
  assert.equal(ignored('a?c', 'a/c'), undefined);
  assert.equal(ignored('[a-c].txt', 'b.txt'), true);
  assert.equal(ignored('[a-c].txt', 'd.txt'), undefined);
  assert.equal(ignored('[!a-c].txt', 'd.txt'), true);
  assert.equal(ignored('[!a-c].txt', 'a.txt'), undefined);
  assert.equal(ignored('x.(y)+', 'x.(y)+'), true, 'regex metacharacters are literal');
});

test('gitignore: negation, last match wins, comments, escapes, trailing spaces', () => {
  const rules = '# comment\n*.md\n!keep.md\n\\#hash\n\\!bang\nspace\\ \ntrail   \n';
  assert.equal(ignored(rules, 'a.md'), true);
  assert.equal(ignored(rules, 'keep.md'), false);
  assert.equal(ignored('!keep.md\n*.md', 'keep.md'), true, 'order matters');
  assert.equal(ignored(rules, '# comment'), undefined);
  assert.equal(ignored(rules, '#hash'), true);
  assert.equal(ignored(rules, '!bang'), true);
  assert.equal(ignored(rules, 'space '), true);
  assert.equal(ignored(rules, 'trail'), true);
  assert.equal(new IgnoreRules('\n# only comments\n   \n').size, 0);
  assert.equal(ignored('*.md\r\n!x.md\r\n', 'x.md'), false, 'CRLF .gitignore');
});

test('countInvalidUtf8: overlongs, surrogates, out of range and truncated sequences', () => {
  const n = (bytes: number[], truncOk = false) => countInvalidUtf8(new Uint8Array(bytes), bytes.length, truncOk);
  assert.equal(n([...Buffer.from('héllo 🙂 ✓')]), 0);
  assert.equal(n([0xc0, 0x80]), 2); // overlong NUL
  assert.equal(n([0xed, 0xa0, 0x80]), 3); // surrogate half: lead byte then two stray continuations
  assert.equal(n([0xf5, 0x80]), 2);
  assert.equal(n([0x80]), 1);
  assert.equal(n([0x61, 0xe2, 0x9c]), 1);
  assert.equal(n([0x61, 0xe2, 0x9c], true), 0, 'cut off by the end of a sample');
  assert.equal(n([0xe2, 0x41]), 1);
});

test('decodeText: UTF-8 BOM stripped, UTF-16 LE/BE with BOM, binary detection', () => {
  const s = 'héllo\n🙂 wörld';
  const utf8 = decodeText(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(s)]));
  assert.deepEqual(utf8, { kind: 'text', text: s, encoding: 'utf-8', bom: true, invalidSequences: 0 });
  const le = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(s, 'utf16le')]);
  assert.deepEqual(decodeText(le), { kind: 'text', text: s, encoding: 'utf-16le', bom: true, invalidSequences: 0 });
  const be = Buffer.from(le);
  be.swap16();
  assert.deepEqual(decodeText(be), { kind: 'text', text: s, encoding: 'utf-16be', bom: true, invalidSequences: 0 });
  assert.equal(decodeText(Buffer.from([0x61, 0, 0x62])).kind, 'binary');
  assert.equal(decodeText(new Uint8Array(0)).kind, 'text');
  // Mostly valid text with a stray Latin-1 byte: kept, with the replacement counted.
  const latin = decodeText(Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9]), Buffer.from(' au lait, '.repeat(20))]));
  assert.equal(latin.kind, 'text');
  assert.ok(latin.kind === 'text' && latin.invalidSequences === 1 && latin.text.startsWith('caf\ufffd'));
  // Random high bytes without NULs: binary.
  const noise = new Uint8Array(4096).map((_, i) => 0x80 + ((i * 37) % 120));
  const d = decodeText(noise);
  assert.ok(d.kind === 'binary' && d.reason.includes('UTF-8'));
  // A multi-byte character cut by the sniff window is not held against the file.
  const edge = Buffer.from('a'.repeat(SNIFF_BYTES - 1) + '€' + 'b'.repeat(10));
  assert.deepEqual(decodeText(edge).kind, 'text');
  // A NUL after the sniff window does not make a file binary.
  assert.equal(decodeText(Buffer.concat([Buffer.from('x'.repeat(SNIFF_BYTES)), Buffer.from([0])])).kind, 'text');
});

function tree(root: string, files: Record<string, string | Uint8Array>): void {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  }
}

function withTree(files: Record<string, string | Uint8Array>, fn: (root: string) => void): void {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'attend-src-')));
  try {
    tree(root, files);
    fn(root);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

const rel = (root: string, paths: readonly { path: string }[] | readonly string[]) =>
  paths.map((p) =>
    path
      .relative(root, typeof p === 'string' ? p : p.path)
      .split(path.sep)
      .join('/'),
  );

test('gatherSources honours nested .gitignore files, negation and default excludes, in sorted order', () => {
  withTree(
    {
      '.gitignore': '*.log\nbuild/\n!important.log\n/top-only.txt\n',
      'a.md': '# A',
      'b.txt': 'bee',
      'debug.log': 'noise',
      'important.log': 'keep me',
      'top-only.txt': 'x',
      'build/out.txt': 'built',
      'node_modules/pkg/index.js': 'module',
      '.git/HEAD': 'ref: main',
      'sub/.gitignore': '!debug.log\nsecret.txt\n',
      'sub/debug.log': 'sub log',
      'sub/secret.txt': 'shh',
      'sub/top-only.txt': 'not anchored here',
      'sub/z.md': 'zed',
    },
    (root) => {
      const r = gatherSources([root]);
      assert.deepEqual(rel(root, r.documents), [
        '.gitignore',
        'a.md',
        'b.txt',
        'important.log',
        'sub/.gitignore',
        'sub/debug.log',
        'sub/top-only.txt',
        'sub/z.md',
      ]);
      assert.deepEqual(rel(root, r.ignored).sort(), ['.git', 'build', 'debug.log', 'node_modules', 'sub/secret.txt', 'top-only.txt']);
      assert.deepEqual(r.skipped, []);
      assert.equal(r.documents[1].text, '# A');

      const noGit = gatherSources([root], { gitignore: false });
      assert.ok(rel(root, noGit.documents).includes('debug.log'));
      assert.ok(!rel(root, noGit.documents).some((p) => p.startsWith('node_modules')), 'default excludes stay');

      const excl = gatherSources([root], { exclude: ['*.md', '!z.md'] });
      assert.deepEqual(
        rel(root, excl.documents).filter((p) => p.endsWith('.md')),
        ['sub/z.md'],
      );
    },
  );
});

test('enclosing .gitignore files up to the git root apply to a subfolder input; named files are never filtered', () => {
  withTree({ '.git/HEAD': 'x', '.gitignore': 'gen/\n*.tmp\n', 'src/a.ts': 'a', 'src/b.tmp': 'b', 'src/gen/c.ts': 'c' }, (root) => {
    const r = gatherSources(['src'], { cwd: root });
    assert.deepEqual(rel(root, r.documents), ['src/a.ts']);
    assert.deepEqual(rel(root, r.ignored).sort(), ['src/b.tmp', 'src/gen']);
    const named = gatherSources(['src/b.tmp', 'src/gen'], { cwd: root });
    assert.deepEqual(rel(root, named.documents), ['src/b.tmp', 'src/gen/c.ts']);
  });
});

test('binary, oversize, missing and unreadable inputs are reported in skipped, never dropped silently', () => {
  withTree(
    {
      'text.md': 'hello',
      'image.png': new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]),
      'noise.bin': new Uint8Array(2048).map((_, i) => 0x80 + ((i * 53) % 127)),
      'big.txt': 'x'.repeat(5000),
      'bom.txt': Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('with bom')]),
      'utf16.txt': Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('wide text', 'utf16le')]),
    },
    (root) => {
      const r = gatherSources([root, path.join(root, 'missing.md')], { maxFileBytes: 4096 });
      assert.deepEqual(rel(root, r.documents), ['bom.txt', 'text.md', 'utf16.txt']);
      assert.deepEqual(
        r.documents.map((d) => d.text),
        ['with bom', 'hello', 'wide text'],
      );
      assert.equal(r.documents[2].encoding, 'utf-16le');
      const reasons = new Map(r.skipped.map((s) => [rel(root, [s.path])[0], s.reason]));
      assert.equal(reasons.size, 4);
      assert.match(reasons.get('big.txt') ?? '', /too large \(4\.9 KB > limit 4\.0 KB\)/);
      assert.match(reasons.get('image.png') ?? '', /binary/);
      assert.match(reasons.get('noise.bin') ?? '', /binary|UTF-8/);
      assert.equal(reasons.get('missing.md'), 'not found');
    },
  );
});

test(
  'symlink loops and self-links terminate and are reported; a file reached twice is read once',
  { skip: process.platform === 'win32' },
  () => {
    withTree({ 'docs/a.md': 'a', 'docs/deeper/b.md': 'b' }, (root) => {
      fs.symlinkSync('..', path.join(root, 'docs/deeper/up')); // docs/deeper/up -> docs
      fs.symlinkSync('self', path.join(root, 'docs/self')); // ELOOP
      fs.symlinkSync('nowhere', path.join(root, 'docs/dangling'));
      fs.symlinkSync('a.md', path.join(root, 'docs/alias.md'));
      const r = gatherSources([path.join(root, 'docs'), path.join(root, 'docs/a.md')]);
      assert.deepEqual(rel(root, r.documents), ['docs/a.md', 'docs/deeper/b.md']);
      const reasons = r.skipped.map((s) => `${rel(root, [s.path])[0]}: ${s.reason}`);
      assert.ok(
        reasons.some((x) => x.startsWith('docs/deeper/up: symlink loop')),
        reasons.join('\n'),
      );
      assert.ok(reasons.includes('docs/self: symlink loop'), reasons.join('\n'));
      assert.ok(reasons.includes('docs/dangling: broken symlink'), reasons.join('\n'));
      assert.ok(
        reasons.some((x) => x.startsWith('docs/alias.md: same file as') || x.startsWith('docs/a.md: same file as')),
        reasons.join('\n'),
      );
      assert.equal(r.skipped.length, 5, reasons.join('\n'));
    });
  },
);

test('special files are skipped, not read', { skip: process.platform === 'win32' }, () => {
  withTree({ 'a.txt': 'a' }, (root) => {
    const fifo = path.join(root, 'pipe');
    try {
      execFileSync('mkfifo', [fifo]);
    } catch {
      return; // no mkfifo here: nothing to test
    }
    const r = gatherSources([root]);
    assert.deepEqual(rel(root, r.documents), ['a.txt']);
    assert.deepEqual(r.skipped, [{ path: fifo, reason: 'not a regular file' }]);
  });
});
