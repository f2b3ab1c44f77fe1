"""Independent NumPy (float64) forward pass straight from model.safetensors + config.json, with the attention rule
written as an explicit per-query loop over visible keys. Compares against test/fixtures/default-model-reference.json.
Usage: /usr/bin/python3 engine/train/check_numpy.py
"""
import json, os

import numpy as np

from export import read_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def forward(W, c, ids):
    H, nh, nkv, hd = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    win, sinks, eps = c["sliding_window"], c["attend_sink_tokens"], c["rms_norm_eps"]
    g = lambda n: W[n].astype(np.float64)
    n = len(ids)
    x = g("model.embed_tokens.weight")[ids]
    inv = 1.0 / (c["rope_theta"] ** (np.arange(0, hd, 2) / hd))
    ang = np.arange(n)[:, None] * inv[None, :]
    cos, sin = np.cos(ang), np.sin(ang)

    def rope(v):  # v: (n, heads, hd); first half / second half pairing
        a, b = v[..., : hd // 2], v[..., hd // 2:]
        cc, ss = cos[:, None, :], sin[:, None, :]
        return np.concatenate([a * cc - b * ss, b * cc + a * ss], axis=-1)

    def rms(v, w):
        return v / np.sqrt((v * v).mean(-1, keepdims=True) + eps) * w

    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, g(p + "input_layernorm.weight"))
        q = rope((h @ g(p + "self_attn.q_proj.weight").T).reshape(n, nh, hd))
        k = rope((h @ g(p + "self_attn.k_proj.weight").T).reshape(n, nkv, hd))
        v = (h @ g(p + "self_attn.v_proj.weight").T).reshape(n, nkv, hd)
        o = np.zeros((n, nh, hd))
        for t in range(n):
            vis = [j for j in range(t + 1) if (t - j < win or j < sinks)]
            for hh in range(nh):
                kv = hh // (nh // nkv)
                s = k[vis, kv, :] @ q[t, hh] / np.sqrt(hd)
                e = np.exp(s - s.max())
                o[t, hh] = (e / e.sum()) @ v[vis, kv, :]
        x = x + o.reshape(n, nh * hd) @ g(p + "self_attn.o_proj.weight").T
        h = rms(x, g(p + "post_attention_layernorm.weight"))
        gt = h @ g(p + "mlp.gate_proj.weight").T
        x = x + ((gt / (1 + np.exp(-gt))) * (h @ g(p + "mlp.up_proj.weight").T)) @ g(p + "mlp.down_proj.weight").T
    x = rms(x, g("model.norm.weight"))
    return x @ g("model.embed_tokens.weight").T


def main():
    mdir = os.path.join(ROOT, "models", "attend-default")
    c = json.load(open(os.path.join(mdir, "config.json")))
    W = read_safetensors(os.path.join(mdir, "model.safetensors"))
    ref = json.load(open(os.path.join(ROOT, "test", "fixtures", "default-model-reference.json")))
    worst = 0.0
    for pr in ref["prompts"]:
        L = forward(W, c, np.array(pr["ids"]))
        for p, row in pr["logits"].items():
            r = np.array(row)
            d = np.abs(L[int(p)] - r).max() / max(1.0, np.abs(r).max())
            worst = max(worst, d)
        print(pr["name"], pr["n_tokens"], "max rel diff", f"{worst:.2e}")
    assert worst < 1e-5, worst
    print("OK")


if __name__ == "__main__":
    main()
