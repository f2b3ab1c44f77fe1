import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  bf16ToF32,
  checkpointProblems,
  expectedTensors,
  f16ToF32,
  f32ToBF16Bits,
  f32ToF16Bits,
  openCheckpoint,
  readMetadata,
  tensorNames,
  validateCheckpoint,
  writeSafetensors,
} from '../../engine/safetensors';
import { loadConfig, parseConfig } from '../../engine/config';
import { makeTinyModel } from '../../tools/make-fixture';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'attend-st-'));
}

function withDir(fn: (dir: string) => void): void {
  const dir = tmpDir();
  try {
    fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** A raw safetensors file from a header object and a data section (no validation: for corrupt files). */
function rawFile(header: unknown, data: Uint8Array, headerLenOverride?: bigint): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLenOverride ?? BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

function throwsWith(fn: () => unknown, ...parts: string[]): void {
  assert.throws(fn, (e: Error) => {
    for (const p of parts) assert.ok(e.message.includes(p), `expected "${p}" in: ${e.message}`);
    return true;
  });
}

/** fp16 value by the IEEE 754 formula, independent of the bit tricks under test. */
function f16Reference(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function bf16Reference(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 7) & 0xff;
  const mant = h & 0x7f;
  if (exp === 0) return sign * mant * 2 ** -133;
  if (exp === 255) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 128) * 2 ** (exp - 127);
}

test('f16 -> f32 matches the IEEE formula for all 65536 values (subnormals, inf, nan, -0)', () => {
  const src = new Uint16Array(65536).map((_, i) => i);
  const out = new Float32Array(65536);
  f16ToF32(src, out);
  for (let h = 0; h < 65536; h++) {
    assert.ok(Object.is(out[h], f16Reference(h)), `h=0x${h.toString(16)}: ${out[h]} vs ${f16Reference(h)}`);
    if (!Number.isNaN(out[h])) assert.equal(f32ToF16Bits(out[h]), h, `round trip 0x${h.toString(16)}`);
  }
});

test('bf16 -> f32 matches the IEEE formula for all 65536 values', () => {
  const src = new Uint16Array(65536).map((_, i) => i);
  const out = new Float32Array(65536);
  bf16ToF32(src, out);
  for (let h = 0; h < 65536; h++) {
    assert.ok(Object.is(out[h], Math.fround(bf16Reference(h))), `h=0x${h.toString(16)}`);
    if (!Number.isNaN(out[h])) assert.equal(f32ToBF16Bits(out[h]), h);
  }
});

test('f32 -> f16/bf16 round to nearest even, overflow to inf, keep NaN', () => {
  const f16 = (x: number) => f16Reference(f32ToF16Bits(x));
  assert.equal(f16(1 + 2 ** -11), 1); // tie, to even
  assert.equal(f16(1 + 3 * 2 ** -11), 1 + 2 ** -9); // tie, to even (up)
  assert.equal(f16(1 + 2 ** -11 + 2 ** -20), 1 + 2 ** -10); // above the tie
  assert.equal(f16(65504), 65504);
  assert.equal(f16(65519), 65504);
  assert.equal(f16(65520), Infinity);
  assert.equal(f16(-1e10), -Infinity);
  assert.equal(f16(2 ** -25), 0); // half the smallest subnormal, ties to 0
  assert.equal(f16(1.5 * 2 ** -25), 2 ** -24);
  assert.equal(f16(3 * 2 ** -24 + 2 ** -30), 3 * 2 ** -24);
  assert.ok(Object.is(f16(-0), -0));
  assert.ok(Number.isNaN(f16(NaN)));
  const bf = (x: number) => bf16Reference(f32ToBF16Bits(x));
  assert.equal(bf(1 + 2 ** -8), 1);
  assert.equal(bf(1 + 3 * 2 ** -8), 1 + 2 ** -6);
  assert.equal(bf(3.4028234663852886e38), Infinity);
  assert.ok(Number.isNaN(bf(NaN)));
});

const SPECIAL = [0, -0, 1, -2.5, 65504, 6.103515625e-5, 2 ** -24, 2 ** -20, Infinity, -Infinity, NaN, 0.333251953125];

test('writeSafetensors / readF32 round trip for F32, F16 and BF16, with metadata', () => {
  withDir((dir) => {
    const f32 = new Float32Array([...SPECIAL, 1e-40, 3.4e38, Math.PI]);
    const file = path.join(dir, 'model.safetensors');
    writeSafetensors(
      file,
      [
        { name: 'a.f32', dtype: 'F32', shape: [3, 5], data: f32 },
        { name: 'b.f16', dtype: 'F16', shape: [12], data: new Float32Array(SPECIAL) },
        {
          name: 'c.bf16',
          dtype: 'BF16',
          shape: [2, 2, 3],
          data: new Float32Array([0, -0, 1, -2.5, 256, 2 ** -130, Infinity, -Infinity, NaN, 3, 0.5, -1]),
        },
        { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
      ],
      { format: 'pt' },
    );
    assert.equal(fs.readFileSync(file).readUInt32LE(0) % 8, 0, 'header padded to 8 bytes');
    assert.deepEqual(readMetadata(file), { format: 'pt' });
    const ck = openCheckpoint(dir);
    try {
      assert.deepEqual([...ck.tensors.keys()].sort(), ['a.f32', 'b.f16', 'c.bf16', 'empty']);
      const info = ck.tensors.get('c.bf16');
      assert.deepEqual([info?.name, info?.dtype, info?.shape, info?.file], ['c.bf16', 'BF16', [2, 2, 3], file]);
      const a = ck.readF32('a.f32', [3, 5]);
      for (let i = 0; i < f32.length; i++) assert.ok(Object.is(a[i], f32[i]), `a[${i}]`);
      const b = ck.readF32('b.f16');
      for (let i = 0; i < SPECIAL.length; i++) assert.ok(Object.is(b[i], SPECIAL[i]), `b[${i}] ${b[i]} vs ${SPECIAL[i]}`);
      const c = ck.readF32('c.bf16', [2, 2, 3]);
      assert.deepEqual([...c], [0, -0, 1, -2.5, 256, 2 ** -130, Infinity, -Infinity, NaN, 3, 0.5, -1]);
      assert.ok(Object.is(c[1], -0));
      assert.equal(ck.readF32('empty').length, 0);
    } finally {
      ck.close();
    }
    assert.throws(() => ck.readF32('a.f32'), /closed/);
  });
});

test('half-precision tensors larger than one read chunk convert correctly across chunk boundaries', () => {
  withDir((dir) => {
    const n = (1 << 23) + 1001; // > 16 MiB of fp16
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = (i % 2048) - 1024;
    writeSafetensors(path.join(dir, 'model.safetensors'), [{ name: 'big', dtype: 'F16', shape: [n], data }]);
    const ck = openCheckpoint(dir);
    const got = ck.readF32('big');
    ck.close();
    for (const i of [0, 1, (1 << 23) - 1, 1 << 23, (1 << 23) + 1, n - 1]) assert.equal(got[i], data[i], `index ${i}`);
    let bad = 0;
    for (let i = 0; i < n; i++) if (got[i] !== data[i]) bad++;
    assert.equal(bad, 0);
  });
});

test('readF32 errors name the tensor and the file', () => {
  withDir((dir) => {
    const file = path.join(dir, 'model.safetensors');
    writeSafetensors(file, [{ name: 'w', dtype: 'F32', shape: [2, 3], data: new Float32Array(6) }]);
    const ck = openCheckpoint(dir);
    try {
      throwsWith(() => ck.readF32('w', [3, 2]), 'w', file, '(2, 3)', '(3, 2)');
      throwsWith(() => ck.readF32('w', [6]), 'w', file);
      throwsWith(() => ck.readF32('nope'), 'nope', file, 'not found');
    } finally {
      ck.close();
    }
  });
});

test('corrupt files: truncated, header past the end, tiny file, bad JSON, unknown dtype, wrong size, overlap', () => {
  withDir((dir) => {
    const file = path.join(dir, 'model.safetensors');
    const write = (buf: Uint8Array) => fs.writeFileSync(file, buf);
    const open = () => openCheckpoint(dir).close();
    const entry = (dtype: string, shape: number[], offsets: number[]) => ({ dtype, shape, data_offsets: offsets });

    write(rawFile({ w: entry('F32', [4], [0, 16]) }, new Uint8Array(10)));
    throwsWith(open, file, 'w', 'truncated');

    writeSafetensors(file, [{ name: 'w', dtype: 'F32', shape: [100], data: new Float32Array(100) }]);
    fs.truncateSync(file, fs.statSync(file).size - 1);
    throwsWith(open, file, 'w', 'past the end');

    write(rawFile({ w: entry('F32', [1], [0, 4]) }, new Uint8Array(4), 1000n));
    throwsWith(open, file, 'header length 1000', 'exceeds');
    write(rawFile({}, new Uint8Array(0), 2n ** 63n));
    throwsWith(open, file, 'exceeds');

    write(new Uint8Array(5));
    throwsWith(open, file, 'truncated');

    const garbage = Buffer.from('{not json');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(garbage.length));
    write(Buffer.concat([len, garbage]));
    throwsWith(open, file, 'not valid JSON');

    write(rawFile({ q: entry('I8', [4], [0, 4]) }, new Uint8Array(4)));
    throwsWith(open, file, 'q', '"I8"');
    write(rawFile({ d: entry('F64', [1], [0, 8]) }, new Uint8Array(8)));
    throwsWith(open, file, 'd', '"F64"');

    write(rawFile({ w: entry('F16', [4], [0, 16]) }, new Uint8Array(16)));
    throwsWith(open, file, 'w', '16 bytes', 'needs 8');

    write(rawFile({ a: entry('F32', [4], [0, 16]), b: entry('F32', [2], [12, 20]) }, new Uint8Array(20)));
    throwsWith(open, file, 'a', 'b', 'overlap');

    write(rawFile({ a: entry('F32', [1], [8, 4]) }, new Uint8Array(8)));
    throwsWith(open, file, 'a', 'data_offsets');
    write(rawFile({ a: entry('F32', [-1], [0, 4]) }, new Uint8Array(8)));
    throwsWith(open, file, 'a', 'shape');

    // Unsorted but disjoint entries are fine.
    write(rawFile({ b: entry('F32', [1], [4, 8]), a: entry('F32', [1], [0, 4]) }, new Uint8Array(8)));
    open();
  });
});

test('no checkpoint at all names the folder', () => {
  withDir((dir) => throwsWith(() => openCheckpoint(dir), dir, 'model.safetensors'));
});

test('sharded checkpoints read like single files; a missing shard names index and shard', () => {
  withDir((root) => {
    const single = makeTinyModel(path.join(root, 'single'), { family: 'llama', seed: 7 });
    const sharded = makeTinyModel(path.join(root, 'sharded'), { family: 'llama', seed: 7, shards: 3 });
    const cfg = loadConfig(single.dir);
    const a = openCheckpoint(single.dir);
    const b = openCheckpoint(sharded.dir);
    try {
      assert.equal(new Set([...b.tensors.values()].map((t) => t.file)).size, 3);
      assert.deepEqual([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort());
      validateCheckpoint(cfg, b);
      for (const { name, shape } of expectedTensors(cfg)) assert.deepEqual(b.readF32(name, shape), a.readF32(name, shape));
    } finally {
      a.close();
      b.close();
    }
    const index = path.join(sharded.dir, 'model.safetensors.index.json');
    const shard = path.join(sharded.dir, 'model-00002-of-00003.safetensors');
    fs.rmSync(shard);
    throwsWith(() => openCheckpoint(sharded.dir), index, shard, 'missing');

    const json = JSON.parse(fs.readFileSync(index, 'utf8'));
    json.weight_map['model.norm.weight'] = '../elsewhere.safetensors';
    fs.writeFileSync(index, JSON.stringify(json));
    throwsWith(() => openCheckpoint(sharded.dir), index, 'model.norm.weight');
    fs.writeFileSync(index, JSON.stringify({ metadata: {} }));
    throwsWith(() => openCheckpoint(sharded.dir), index, 'weight_map');
  });
});

test('a tensor the index maps to a shard that lacks it is an error', () => {
  withDir((dir) => {
    const m = makeTinyModel(dir, { family: 'llama', shards: 2 });
    const index = path.join(m.dir, 'model.safetensors.index.json');
    const json = JSON.parse(fs.readFileSync(index, 'utf8'));
    json.weight_map['model.extra.weight'] = 'model-00001-of-00002.safetensors';
    fs.writeFileSync(index, JSON.stringify(json));
    throwsWith(() => openCheckpoint(dir), index, 'model.extra.weight', 'does not contain');
  });
});

test('F16 and BF16 checkpoints read close to the F32 weights', () => {
  withDir((root) => {
    const f32 = makeTinyModel(path.join(root, 'f32'), { family: 'qwen2', seed: 3 });
    const cfg = loadConfig(f32.dir);
    for (const dtype of ['F16', 'BF16'] as const) {
      const half = makeTinyModel(path.join(root, dtype), { family: 'qwen2', seed: 3, dtype });
      const a = openCheckpoint(f32.dir);
      const b = openCheckpoint(half.dir);
      try {
        validateCheckpoint(cfg, b);
        assert.equal(b.tensors.get(tensorNames.embedTokens)?.dtype, dtype);
        const tol = dtype === 'F16' ? 2 ** -10 : 2 ** -7;
        for (const { name } of expectedTensors(cfg)) {
          const x = a.readF32(name);
          const y = b.readF32(name);
          for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i] - y[i]) <= tol * Math.abs(x[i]) + 1e-7, `${dtype} ${name}[${i}]`);
        }
      } finally {
        a.close();
        b.close();
      }
    }
  });
});

test('expectedTensors follows the family: qwen2 q/k/v bias, llama attention_bias adds o_proj bias, tied has no lm_head', () => {
  const cfg = (over: Record<string, unknown>) =>
    parseConfig(
      {
        model_type: 'llama',
        hidden_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        intermediate_size: 96,
        vocab_size: 100,
        max_position_embeddings: 128,
        ...over,
      },
      'config.json',
    );
  const names = (over: Record<string, unknown>) => expectedTensors(cfg(over)).map((t) => t.name);
  const l0 = tensorNames.layer(0);
  const plain = names({});
  assert.equal(plain.length, 1 + 2 * 9 + 2);
  assert.ok(plain.includes('lm_head.weight') && !plain.includes(l0.qBias));
  const qwen = names({ model_type: 'qwen2', tie_word_embeddings: true });
  assert.ok(qwen.includes(l0.qBias) && qwen.includes(l0.kBias) && qwen.includes(l0.vBias) && !qwen.includes(l0.oBias));
  assert.ok(!qwen.includes('lm_head.weight'));
  const biased = names({ attention_bias: true });
  assert.ok(biased.includes(l0.oBias) && biased.includes(l0.qBias));
  const shapes = new Map(expectedTensors(cfg({ head_dim: 32 })).map((t) => [t.name, t.shape]));
  assert.deepEqual(shapes.get(l0.qProj), [128, 64]);
  assert.deepEqual(shapes.get(l0.kProj), [64, 64]);
  assert.deepEqual(shapes.get(l0.oProj), [64, 128]);
  assert.deepEqual(shapes.get(l0.downProj), [64, 96]);
  assert.deepEqual(shapes.get('model.embed_tokens.weight'), [100, 64]);
  assert.equal(l0.qProj, 'model.layers.0.self_attn.q_proj.weight');
  assert.equal(tensorNames.layer(1).gateProj, 'model.layers.1.mlp.gate_proj.weight');
});

test('validateCheckpoint reports every missing and mis-shaped tensor by name and file', () => {
  withDir((dir) => {
    const l1 = tensorNames.layer(1);
    makeTinyModel(dir, {
      family: 'qwen2',
      omitTensors: [l1.kBias, tensorNames.finalNorm],
      overrideShapes: { [l1.upProj]: [127, 64], [tensorNames.embedTokens]: [10, 64] },
    });
    const cfg = loadConfig(dir);
    const ck = openCheckpoint(dir);
    const file = path.join(dir, 'model.safetensors');
    try {
      const problems = checkpointProblems(cfg, ck);
      assert.equal(problems.length, 4, problems.join('\n'));
      throwsWith(
        () => validateCheckpoint(cfg, ck),
        '4 problems',
        `${file}: missing tensor ${l1.kBias}`,
        `${file}: missing tensor ${tensorNames.finalNorm}`,
        `${file}: tensor ${l1.upProj} has shape (127, 64), expected (128, 64)`,
        `${file}: tensor ${tensorNames.embedTokens} has shape (10, 64)`,
      );
    } finally {
      ck.close();
    }
  });
  withDir((dir) => {
    makeTinyModel(dir, { family: 'llama', omitTensors: ['lm_head.weight'], shards: 2 });
    const ck = openCheckpoint(dir);
    try {
      throwsWith(
        () => validateCheckpoint(loadConfig(dir), ck),
        path.join(dir, 'model.safetensors.index.json'),
        'lm_head.weight',
        'tie_word_embeddings',
      );
    } finally {
      ck.close();
    }
  });
});
