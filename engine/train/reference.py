"""Reference logits for the engine's regression test: test/fixtures/default-model-reference.json.

Loads the EXPORTED weights (models/attend-default/model.safetensors, as stored) into our PyTorch model in float64,
runs 4 prompts (short, medium, just over the window, ~700 tokens > window W=512) built in the engine's prompt layout,
and stores full logits at the last position and a few earlier positions (6 significant digits), plus the greedy answer.
Usage: /usr/bin/python3 engine/train/reference.py
"""
import hashlib, json, os, random

import torch

import bpe
import data as D
from export import load_exported
from model import greedy

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def g6(x):
    return float(f"{x:.6g}")


def build_prompts(tok):
    enc = D.Encoder(tok)
    prompts = []
    docs = [["config/app.env", "DB_HOST=db.internal\nDB_PORT=5432\nMAX_RETRIES=7\nLOG_LEVEL=debug"]]
    ids, _ = enc.prompt(docs, "What is the value of DB_PORT?")
    prompts.append(("short_kv", docs, "What is the value of DB_PORT?", ids))
    c = D.Corpus("eval")
    gen = D.Gen(c)
    rng = random.Random(2026)
    for name, L in (("medium", 300), ("over_window", 540), ("long", 700)):
        while True:
            r = D.sample_example(gen, enc, rng, L, max_len=L + 60)
            if r and r[0]["task"] != "notfound" and abs(r[3] - L) < 80 and (L < 512 or r[3] > 512):
                ex = r[0]
                prompts.append((name, ex["docs"], ex["question"], r[1][:r[3]]))
                break
    return prompts


def main():
    tok = bpe.load()
    mdir = os.path.join(ROOT, "models", "attend-default")
    m = load_exported(mdir, torch.float64)
    cfg = json.load(open(os.path.join(mdir, "config.json")))
    eos = tok.special["<|end|>"]
    out = {
        "description": "Reference logits of models/attend-default computed in float64 by engine/train/reference.py "
                       "(PyTorch, exported weights as stored). Attention: key k visible to query q iff k <= q and "
                       "(q - k < sliding_window or k < attend_sink_tokens). Logits rounded to 6 significant digits.",
        "sliding_window": cfg["sliding_window"],
        "sinks": cfg["attend_sink_tokens"],
        "vocab_size": cfg["vocab_size"],
        "weights_sha256": hashlib.sha256(open(os.path.join(mdir, "model.safetensors"), "rb").read()).hexdigest(),
        "prompts": [],
    }
    with torch.no_grad():
        for name, docs, question, ids in build_prompts(tok):
            n = len(ids)
            logits = m(torch.tensor([ids]))[0]
            pos = sorted(set([0, 3, 4, n // 2, n - 2, n - 1] + ([511, 512, n - 100] if n > 512 else [])))
            ans = greedy(m, ids, eos, max_new=20)
            out["prompts"].append({
                "name": name,
                "docs": [{"name": p, "text": t} for p, t in docs],
                "question": question,
                "ids": ids,
                "n_tokens": n,
                "positions": pos,
                "logits": {str(p): [g6(v) for v in logits[p].tolist()] for p in pos},
                "argmax": {str(p): int(logits[p].argmax()) for p in pos},
                "greedy_answer_ids": ans,
                "greedy_answer": tok.decode(ans),
            })
            print(name, n, "tokens; greedy answer:", repr(tok.decode(ans)))
    path = os.path.join(ROOT, "test", "fixtures", "default-model-reference.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
