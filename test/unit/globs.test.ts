import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  enabledPatterns,
  excludedBecause,
  findFilesExclude,
  GitignoreSet,
  GlobSet,
  globToRegExp,
  workspaceFilter,
} from '../../extension/globs';

test('VS Code glob syntax', () => {
  const m = (g: string, p: string): boolean => globToRegExp(g).test(p);
  assert.ok(m('**/*.md', 'README.md'));
  assert.ok(m('**/*.md', 'docs/a/b.md'));
  assert.ok(!m('**/*.md', 'docs/a/b.mdx'));
  assert.ok(m('*.ts', 'a.ts'));
  assert.ok(!m('*.ts', 'src/a.ts'));
  assert.ok(m('src/**', 'src/a/b.ts'));
  assert.ok(m('**/*.{ts,js}', 'x/y.js'));
  assert.ok(m('{docs/**/*.{md,txt},*.rst}', 'docs/q/a.txt'));
  assert.ok(m('{docs/**/*.{md,txt},*.rst}', 'a.rst'));
  assert.ok(!m('{docs/**/*.{md,txt},*.rst}', 'docs/a.rs'));
  assert.ok(m('file?.txt', 'file1.txt'));
  assert.ok(!m('file?.txt', 'file/.txt'));
  assert.ok(m('[ab].txt', 'a.txt'));
  assert.ok(!m('[!ab].txt', 'a.txt'));
  assert.ok(m('a+b(1).txt', 'a+b(1).txt'), 'regex characters are literal');
});

test('a pattern matching a folder covers everything inside it', () => {
  const g = new GlobSet(['**/node_modules', 'build/', '**/*.min.js']);
  assert.ok(g.matches('node_modules/x/index.js'));
  assert.ok(g.matches('pkg/node_modules/y.js'));
  assert.ok(g.matches('build/out.txt'));
  assert.ok(g.matches('web/app.min.js'));
  assert.ok(!g.matches('src/node_modules_notes.md'));
  assert.ok(!new GlobSet([]).matches('anything'));
});

test('settings combine: include defaults to everything; only true entries of exclude objects count', () => {
  assert.deepEqual(enabledPatterns({ '**/.git': true, '**/*.js': { when: '$(basename).ts' }, '**/off': false }), ['**/.git']);
  assert.deepEqual(enabledPatterns(null), []);
  const f = workspaceFilter({
    attendInclude: [],
    attendExclude: ['**/*.log', ''],
    filesExclude: { '**/.git': true },
    searchExclude: { '**/node_modules': true, '**/.git': true },
  });
  assert.deepEqual(f.include, ['**/*']);
  assert.deepEqual(f.exclude, ['**/.git', '**/node_modules', '**/*.log']);
  assert.deepEqual(workspaceFilter({ attendInclude: ['docs/**'], attendExclude: [], filesExclude: {}, searchExclude: {} }).include, [
    'docs/**',
  ]);
});

test('findFiles gets the brace-free excludes joined; nested-brace patterns are left to GlobSet', () => {
  assert.equal(findFilesExclude([]), null);
  assert.equal(findFilesExclude(['**/a']), '**/a');
  assert.equal(findFilesExclude(['**/a', '**/*.{png,jpg}', 'b/**']), '{**/a,b/**}');
});

test('.gitignore rules: nested files override, ignored folders hide their contents, negation re-includes', () => {
  const gi = new GitignoreSet([
    { dir: '', text: '*.log\n/dist\nsecret/\n!keep.log\n' },
    { dir: 'pkg', text: 'generated/\n!debug.log\n' },
  ]);
  assert.ok(gi.ignores('a.log'));
  assert.ok(!gi.ignores('keep.log'));
  assert.ok(gi.ignores('dist/x.js'));
  assert.ok(!gi.ignores('src/dist/x.js'), 'anchored /dist only at the root');
  assert.ok(gi.ignores('a/secret/b.txt'));
  assert.ok(gi.ignores('pkg/generated/x.ts'));
  assert.ok(!gi.ignores('generated/x.ts'));
  assert.ok(!gi.ignores('pkg/debug.log'), 'deeper .gitignore re-includes');
  assert.ok(gi.ignores('other/debug.log'));
  assert.ok(!gi.ignores('src/main.ts'));
});

test('excludedBecause names the rule family', () => {
  const ex = new GlobSet(['**/node_modules']);
  const gi = new GitignoreSet([{ dir: '', text: 'out/\n' }]);
  assert.match(excludedBecause('node_modules/a.js', ex, gi) ?? '', /exclude/);
  assert.match(excludedBecause('out/a.js', ex, gi) ?? '', /gitignore/);
  assert.equal(excludedBecause('src/a.js', ex, gi), null);
  assert.equal(excludedBecause('out/a.js', ex, null), null);
});
