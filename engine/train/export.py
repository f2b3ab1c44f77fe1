"""Export a training checkpoint to the Hugging Face layout in models/attend-default/.

Writes config.json, model.safetensors (F32, written by hand: 8-byte LE header length + JSON header + raw LE data),
tokenizer.json, tokenizer_config.json, generation_config.json. Then reloads the safetensors file and checks
that it reproduces the checkpoint's logits.
Usage: /usr/bin/python3 engine/train/export.py [--ckpt engine/train/runs/main/ckpt.pt] [--out models/attend-default]
"""
import argparse, json, os, struct, sys

import numpy as np
import torch

import bpe
from model import Cfg, Model

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

NP_DT = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8")}
MAX_SINK_DISTANCE = 720


def hf_tensors(model):
    sd = model.state_dict()
    out = {"model.embed_tokens.weight": sd["embed_tokens.weight"]}
    for i in range(model.c.n_layers):
        p = f"layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out[f"model.layers.{i}.self_attn.{n}.weight"] = sd[p + n + ".weight"]
        for n in ("gate_proj", "up_proj", "down_proj"):
            out[f"model.layers.{i}.mlp.{n}.weight"] = sd[p + n + ".weight"]
        out[f"model.layers.{i}.input_layernorm.weight"] = sd[p + "input_layernorm.weight"]
        out[f"model.layers.{i}.post_attention_layernorm.weight"] = sd[p + "post_attention_layernorm.weight"]
    out["model.norm.weight"] = sd["norm.weight"]
    return out


def write_safetensors(path, tensors, dtype="F32"):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        a = np.ascontiguousarray(t.detach().cpu().numpy().astype(NP_DT[dtype]))
        b = a.tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        s, e = info["data_offsets"]
        out[name] = np.frombuffer(data[s:e], dtype=NP_DT[info["dtype"]]).reshape(info["shape"])
    return out


def load_exported(model_dir, dtype=torch.float64):
    """Build our PyTorch model from an exported folder (weights as stored), in the given dtype."""
    cfgj = json.load(open(os.path.join(model_dir, "config.json")))
    c = Cfg(vocab_size=cfgj["vocab_size"], hidden_size=cfgj["hidden_size"], n_layers=cfgj["num_hidden_layers"],
            n_heads=cfgj["num_attention_heads"], n_kv_heads=cfgj["num_key_value_heads"], head_dim=cfgj["head_dim"],
            intermediate_size=cfgj["intermediate_size"], rope_theta=cfgj["rope_theta"], rms_eps=cfgj["rms_norm_eps"],
            window=cfgj["sliding_window"], sinks=cfgj["attend_sink_tokens"])
    m = Model(c)
    st = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    sd = {}
    for k, v in st.items():
        k2 = k.replace("model.", "", 1).replace("self_attn.", "").replace("mlp.", "")
        sd[k2] = torch.from_numpy(v.astype(np.float64))
    m.load_state_dict(sd, strict=True)
    return m.to(dtype).eval()


def config_json(c: Cfg, tok, dtype):
    return {
        "architectures": ["MistralForCausalLM"],
        "model_type": "mistral",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.n_layers,
        "num_attention_heads": c.n_heads,
        "num_key_value_heads": c.n_kv_heads,
        "head_dim": c.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": c.max_pos,
        "rms_norm_eps": c.rms_eps,
        "rope_theta": c.rope_theta,
        "rope_scaling": None,
        "sliding_window": c.window,
        "use_sliding_window": True,
        "attend_sink_tokens": c.sinks,
        # Training sequences reach ~720 prompt tokens, so queries never saw a sink further away: past that the engine
        # moves the sinks' rotary positions along (engine/runtime/decoder.ts, Decoder.sinkShift).
        "attend_max_sink_distance": MAX_SINK_DISTANCE,
        # Every training answer is a span of the documents or "not found": the engine decodes answers as quotes
        # (engine/quote.ts), which turns a slip in copying into the span being copied.
        "attend_quote_answers": ["not found"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "tie_word_embeddings": True,
        "initializer_range": 0.02,
        "bos_token_id": None,
        "eos_token_id": tok.special["<|end|>"],
        "pad_token_id": tok.special["<|endoftext|>"],
        "torch_dtype": {"F32": "float32", "F16": "float16"}[dtype],
        "use_cache": True,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(HERE, "runs", "main", "ckpt.pt"))
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "attend-default"))
    ap.add_argument("--dtype", default="F32", choices=["F32", "F16"])
    args = ap.parse_args()
    ck = torch.load(args.ckpt)
    c = Cfg(**ck["cfg"])
    model = Model(c)
    model.load_state_dict(ck["model"])
    model.eval()
    tok = bpe.load()
    os.makedirs(args.out, exist_ok=True)
    write_safetensors(os.path.join(args.out, "model.safetensors"), hf_tensors(model), args.dtype)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config_json(c, tok, args.dtype), f, indent=2)
    with open(os.path.join(args.out, "tokenizer.json"), "w") as f:
        json.dump(tok.to_hf_json(), f, ensure_ascii=False)
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump(bpe.tokenizer_config(tok), f, indent=2)
    with open(os.path.join(args.out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": None, "eos_token_id": tok.special["<|end|>"], "pad_token_id": tok.special["<|endoftext|>"],
                   "do_sample": False, "max_new_tokens": 32}, f, indent=2)
    # round-trip check
    m2 = load_exported(args.out, torch.float32)
    x = torch.randint(0, tok.n_bpe, (1, 600), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        d = (model(x) - m2(x)).abs().max().item()
    what = f"average of {' + '.join(ck['averaged'])}" if "averaged" in ck else f"step {ck['step']}"
    print(f"exported {what} to {args.out}; params {model.n_params()}; "
          f"safetensors {os.path.getsize(os.path.join(args.out, 'model.safetensors'))} bytes; roundtrip max|dlogit| {d:.2e}")
    assert d < 1e-3 if args.dtype == "F16" else d < 1e-5


if __name__ == "__main__":
    main()
