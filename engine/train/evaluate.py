"""Held-out evaluation of the exported model (models/attend-default, float32) on EVAL-corpus filler.

Exact match per task, for prompts within the window (64-480 tokens) and beyond it (540-720 tokens, needle within the
last W tokens). Exact match = teacher-forced argmax equals every answer token and the final <|end|> (identical to
greedy decoding reproducing the answer); a subset is also greedily decoded to show the strings.
Usage: /usr/bin/python3 engine/train/evaluate.py [--n 20] [--json out.json]
"""
import argparse, json, os, random, sys

import torch

import bpe
import data as D
from export import load_exported
from model import greedy
from train import exact_match, make_val

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    D.add_data_args(ap)
    ap.add_argument("--json", default=None)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "attend-default"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    D.apply_data_args(args)
    tok = bpe.load()
    m = load_exported(args.model, torch.float32)
    res = {}
    for name, lo, hi, seed in (("within_window", 64, 480, 4242), ("beyond_window", 540, 720, 4343)):
        val = make_val(tok, n_per_task=args.n, seed=seed, lo=lo, hi=hi) if hi <= 480 else None
        if val is None:
            c = D.Corpus("eval")
            gen, enc = D.Gen(c), D.Encoder(tok)
            rng = random.Random(seed)
            val = {t: [] for t in D.TASKS}
            while min(len(v) for v in val.values()) < args.n // 2:
                r = D.sample_example(gen, enc, rng, rng.randint(lo, hi), max_len=760)
                if r and r[3] > 512 and len(val[r[0]["task"]]) < args.n // 2:
                    val[r[0]["task"]].append((r[1], r[3], r[0]))
        em = exact_match(m, val)
        res[name] = {k: round(v, 3) for k, v in em.items()}
        res[name]["n_per_task"] = len(next(iter(val.values())))
        print(name, json.dumps(res[name]), flush=True)
        if name == "within_window":
            samples = []
            for task, items in val.items():
                ids, npr, ex = items[0]
                out = tok.decode(greedy(m, ids[:npr], tok.special["<|end|>"], max_new=20))
                samples.append({"task": task, "question": ex["question"], "expected": ex["answer"], "greedy": out})
                print(f"  [{task}] Q: {ex['question']!r} expected {ex['answer']!r} got {out!r}", flush=True)
            res["samples"] = samples
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
