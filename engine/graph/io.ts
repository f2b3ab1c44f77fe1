import { tensorNames } from '../safetensors';

// The decoder graph's input/output names, spelled once. They follow the Hugging Face / onnxruntime-genai names.

export const IO = {
  inputIds: 'input_ids',
  positionIds: 'position_ids',
  /** Additive float mask (1, 1, seq, past + seq): 0 = visible, -inf = hidden. Only in graphs built with sinks/memory. */
  attentionBias: 'attention_bias',
  /** bool scalar: compute `attentions.{i}` this run (graphs built with attentions only); false skips the export. */
  outputAttentions: 'output_attentions',
  /** How many trailing positions get logits (prefill needs only the last one). */
  numLogitsToKeep: 'num_logits_to_keep',
  logits: 'logits',
  pastKey: (layer: number): string => `past_key_values.${layer}.key`,
  pastValue: (layer: number): string => `past_key_values.${layer}.value`,
  presentKey: (layer: number): string => `present.${layer}.key`,
  presentValue: (layer: number): string => `present.${layer}.value`,
  /** Post-softmax attention probabilities (1, nHeads, seq, past + seq). */
  attentions: (layer: number): string => `attentions.${layer}`,
  /** Rotated query vectors (1, seq, nHeads * headDim): block memory scores stored keys with them. */
  queries: (layer: number): string => `queries.${layer}`,
} as const;

/** Hugging Face weight names, from the one table in safetensors.ts, shaped for the graph builder's use. */
export const W = {
  embed: tensorNames.embedTokens,
  finalNorm: tensorNames.finalNorm,
  lmHead: tensorNames.lmHead,
  inputNorm: (l: number): string => tensorNames.layer(l).inputNorm,
  postNorm: (l: number): string => tensorNames.layer(l).postAttentionNorm,
  proj: (l: number, p: 'q' | 'k' | 'v' | 'o'): string => tensorNames.layer(l)[`${p}Proj`],
  projBias: (l: number, p: 'q' | 'k' | 'v' | 'o'): string => tensorNames.layer(l)[`${p}Bias`],
  mlp: (l: number, p: 'gate' | 'up' | 'down'): string => tensorNames.layer(l)[`${p}Proj`],
} as const;
