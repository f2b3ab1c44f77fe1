// Next-token choice: greedy, or seeded temperature + top-p (nucleus) sampling.
import { mulberry32 } from './rng';

export interface SamplingOptions {
  /** 0 = greedy. */
  readonly temperature: number;
  /** Nucleus mass in (0, 1]; 1 = no cut. */
  readonly topP: number;
  readonly seed: number;
}

export const GREEDY: SamplingOptions = { temperature: 0, topP: 1, seed: 0 };

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** A sampler with its own seeded stream, so a seed reproduces a whole answer. */
export function createSampler(opts: SamplingOptions): (logits: ArrayLike<number>) => number {
  if (opts.temperature < 0 || !Number.isFinite(opts.temperature)) throw new Error(`temperature must be >= 0, got ${opts.temperature}`);
  if (!(opts.topP > 0 && opts.topP <= 1)) throw new Error(`top_p must be in (0, 1], got ${opts.topP}`);
  if (opts.temperature === 0) return argmax;
  const random = mulberry32(opts.seed);
  return (logits) => {
    const n = logits.length;
    let max = -Infinity;
    for (let i = 0; i < n; i++) max = Math.max(max, logits[i]);
    const probs = new Float64Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      probs[i] = Math.exp((logits[i] - max) / opts.temperature);
      sum += probs[i];
    }
    const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => probs[y] - probs[x]);
    // Keep the smallest prefix whose mass reaches top_p, then draw from it.
    let kept = 0;
    let mass = 0;
    while (kept < n && mass < opts.topP * sum) mass += probs[order[kept++]];
    let u = random() * mass;
    for (let j = 0; j < kept; j++) {
      u -= probs[order[j]];
      if (u <= 0) return order[j];
    }
    return order[kept - 1];
  };
}
