// The decoder graph's input/output names, spelled once. They follow the Hugging Face / onnxruntime-genai names.

export const IO = {
  inputIds: 'input_ids',
  positionIds: 'position_ids',
  /** Additive float mask (1, 1, seq, past + seq): 0 = visible, -inf = hidden. Only in graphs built with sinks/memory. */
  attentionBias: 'attention_bias',
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

/** Hugging Face weight names for Llama / Qwen2 / Mistral checkpoints. */
export const W = {
  embed: 'model.embed_tokens.weight',
  finalNorm: 'model.norm.weight',
  lmHead: 'lm_head.weight',
  inputNorm: (l: number): string => `model.layers.${l}.input_layernorm.weight`,
  postNorm: (l: number): string => `model.layers.${l}.post_attention_layernorm.weight`,
  proj: (l: number, p: 'q' | 'k' | 'v' | 'o'): string => `model.layers.${l}.self_attn.${p}_proj.weight`,
  projBias: (l: number, p: 'q' | 'k' | 'v'): string => `model.layers.${l}.self_attn.${p}_proj.bias`,
  mlp: (l: number, p: 'gate' | 'up' | 'down'): string => `model.layers.${l}.mlp.${p}_proj.weight`,
} as const;
