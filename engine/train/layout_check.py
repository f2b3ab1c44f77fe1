"""Does the model read a far block that block memory brings back? Answer loss on examples in block memory's layout
(data.sample_superposed, model.Memory: the needle's block hidden from the document and relocated right before the
question, sharing positions with the window, as the engine does) against the same model on examples with the needle
inside the window (data.sample_example), and a control where the needle's block is hidden and another range comes
back instead. Held-out filler (the EVAL corpus) by default.

Usage (repo root): /usr/bin/python3 engine/train/layout_check.py [--ckpt engine/train/runs/avg60/ckpt.pt] [--batches 20]
"""
import argparse, copy, os, random

import torch
import torch.nn.functional as F

import bpe
import data as D
from model import Cfg, Model
from train import build_batch, build_superposed_batch

HERE = os.path.dirname(os.path.abspath(__file__))


def answer_loss(model, ids, wa, memory=None):
    logits = model(ids[:, :-1], memory)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none").view(ids.shape[0], -1)
    a = wa[:, 1:]
    return float((ce * a).sum()), float(a.sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", default=os.path.join(HERE, "runs", "avg60", "ckpt.pt"))
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--split", default="eval")
    ap.add_argument("--seed", type=int, default=42)
    D.add_data_args(ap)
    args = ap.parse_args()
    D.apply_data_args(args)
    torch.manual_seed(0)
    tok = bpe.load()
    model = Model(Cfg(vocab_size=tok.vocab_size))
    model.load_state_dict(torch.load(args.ckpt)["model"])
    model.eval()
    gen, enc = D.Gen(D.Corpus(args.split)), D.Encoder(tok, extra_turns_within=0)
    pad = tok.special["<|endoftext|>"]
    sums = {"in window": [0.0, 0.0], "block memory layout": [0.0, 0.0], "control: needle block hidden": [0.0, 0.0]}
    with torch.no_grad():
        for b in range(args.batches):
            rng = random.Random(args.seed * 1000 + b)
            L = rng.randint(560, 900)
            ids, wa, _, _, mem = build_superposed_batch(gen, enc, rng, L, 3072, pad)
            for name, m in (("block memory layout", mem), ("control: needle block hidden", None)):
                if m is None:
                    m = copy.copy(mem)  # hide the same block, bring back the range 200 tokens away instead
                    m.idx = torch.tensor([s - 200 if s >= 204 else s + 200 for s in mem.starts])[:, None] + torch.arange(mem.n)[None, :]
                s, n = answer_loss(model, ids, wa, m)
                sums[name][0] += s
                sums[name][1] += n
            ids, wa, _, _ = build_batch(gen, enc, rng, rng.randint(300, 480), 3072, pad)
            s, n = answer_loss(model, ids, wa)
            sums["in window"][0] += s
            sums["in window"][1] += n
    print(f"{os.path.relpath(args.ckpt)}, {args.split} filler, {args.batches} batches of each kind; mean answer-token loss:")
    for name, (s, n) in sums.items():
        print(f"  {name:30s} {s / max(n, 1):.3f}  ({int(n)} answer tokens)")


if __name__ == "__main__":
    main()
