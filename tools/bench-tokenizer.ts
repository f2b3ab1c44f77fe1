// Times our tokenizer (tiktoken underneath) against @huggingface/tokenizers on a few MB of real text with the
// Llama 3 tokenizer, checks the ids are identical, and prints tokens/s. A script, not a test.
// Run: npx tsc -p tsconfig.json && node out/tools/bench-tokenizer.js [file]

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { loadTokenizer } from '../engine/tokenizer';

const ROOT = path.join(__dirname, '..', '..');
const DIR = path.join(ROOT, 'node_modules', '@lenml', 'tokenizer-llama3', 'models');
const TARGET_BYTES = 4 * 1024 * 1024;

function collectText(): string {
  const files: string[] = [];
  const licenses = '/usr/share/common-licenses';
  if (fs.existsSync(licenses)) for (const f of fs.readdirSync(licenses).sort()) files.push(path.join(licenses, f));
  const doc = '/usr/share/doc';
  if (fs.existsSync(doc)) for (const d of fs.readdirSync(doc).sort()) files.push(path.join(doc, d, 'copyright'));
  const parts: string[] = [];
  let size = 0;
  for (const f of files) {
    if (size >= TARGET_BYTES) break;
    try {
      if (!fs.statSync(f).isFile()) continue;
      const t = fs.readFileSync(f, 'utf8');
      parts.push(t);
      size += Buffer.byteLength(t);
    } catch {
      // unreadable or a dangling link: skip
    }
  }
  return parts.join('\n');
}

function time<T>(fn: () => T): [T, number] {
  const t0 = process.hrtime.bigint();
  const r = fn();
  return [r, Number(process.hrtime.bigint() - t0) / 1e6];
}

function main(): void {
  const text = process.argv[2] ? fs.readFileSync(process.argv[2], 'utf8') : collectText();
  const mb = Buffer.byteLength(text) / 1024 / 1024;
  const [ours, loadOurs] = time(() => loadTokenizer(DIR));
  const [ref, loadRef] = time(
    () =>
      new HfTokenizer(
        JSON.parse(fs.readFileSync(path.join(DIR, 'tokenizer.json'), 'utf8')),
        JSON.parse(fs.readFileSync(path.join(DIR, 'tokenizer_config.json'), 'utf8')),
      ),
  );
  ours.encode('warm up'); // one-time WASM/regex setup out of the timings
  ref.encode('warm up', { add_special_tokens: false });

  const [a, tOurs] = time(() => ours.encode(text));
  const [n, tCount] = time(() => ours.count(text));
  const [e, tOffsets] = time(() => ours.encodeWithOffsets(text));
  const [b, tRef] = time(() => ref.encode(text, { add_special_tokens: false }).ids);

  let same = a.length === b.length && n === a.length && e.ids.length === a.length;
  let firstDiff = -1;
  for (let i = 0; same && i < a.length; i++) {
    if (a[i] !== b[i] || e.ids[i] !== a[i]) {
      same = false;
      firstDiff = i;
    }
  }
  const rate = (ms: number): string => `${(((a.length / ms) * 1000) / 1e6).toFixed(2)} M tok/s`;
  console.log(`text: ${mb.toFixed(2)} MiB, ${text.length} UTF-16 units, ${a.length} tokens (Llama 3)`);
  console.log(`ids identical: ${same}${firstDiff >= 0 ? ` (first difference at token ${firstDiff})` : ''}`);
  console.log('| | load ms | time ms | throughput |');
  console.log('| --- | ---: | ---: | ---: |');
  console.log(`| ours encode | ${loadOurs.toFixed(0)} | ${tOurs.toFixed(0)} | ${rate(tOurs)} |`);
  console.log(`| ours count | | ${tCount.toFixed(0)} | ${rate(tCount)} |`);
  console.log(`| ours encodeWithOffsets | | ${tOffsets.toFixed(0)} | ${rate(tOffsets)} |`);
  console.log(`| @huggingface/tokenizers encode | ${loadRef.toFixed(0)} | ${tRef.toFixed(0)} | ${rate(tRef)} |`);
  if (!same) process.exitCode = 1;
}

main();
