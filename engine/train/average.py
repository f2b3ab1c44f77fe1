"""Weighted average of checkpoints of the same architecture (weight averaging, "model soup").

    /usr/bin/python3 average.py runs/v12/ckpt.pt:0.6 runs/v17/ckpt.pt:0.4 --out runs/avg/ckpt.pt

Each argument is PATH:WEIGHT; the weights must sum to 1. The result is a checkpoint export.py reads (model and config;
no optimizer state, so it is not for resuming). Averaging only makes sense for checkpoints that share an ancestor
(fine-tuned from one another): v13-v17 all start from v12.
"""
import argparse
import os

import torch


def parse(arg):
    path, sep, w = arg.rpartition(":")
    if not sep or not path:
        raise SystemExit(f"average.py: {arg!r} is not PATH:WEIGHT")
    try:
        return path, float(w)
    except ValueError:
        raise SystemExit(f"average.py: weight {w!r} in {arg!r} is not a number")


def average(parts):
    """parts: [(checkpoint dict, weight)] -> averaged state dict; refuses different configs or tensor names/shapes."""
    cfg0 = parts[0][0]["cfg"]
    sd0 = parts[0][0]["model"]
    for ck, _ in parts[1:]:
        if ck["cfg"] != cfg0:
            raise SystemExit(f"average.py: checkpoints differ in config: {ck['cfg']} vs {cfg0}")
        if set(ck["model"]) != set(sd0) or any(ck["model"][k].shape != sd0[k].shape for k in sd0):
            raise SystemExit("average.py: checkpoints differ in tensor names or shapes")
    return {k: sum(w * ck["model"][k].double() for ck, w in parts).to(sd0[k].dtype) for k in sd0}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("parts", nargs="+", help="PATH:WEIGHT")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    specs = [parse(a) for a in args.parts]
    if len(specs) < 2:
        raise SystemExit("average.py: give at least two checkpoints")
    if abs(sum(w for _, w in specs) - 1) > 1e-6 or any(w < 0 for _, w in specs):
        raise SystemExit(f"average.py: weights must be >= 0 and sum to 1, got {[w for _, w in specs]}")
    parts = [(torch.load(p, map_location="cpu"), w) for p, w in specs]
    sd = average(parts)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save({"model": sd, "cfg": parts[0][0]["cfg"], "step": max(ck.get("step", 0) for ck, _ in parts),
                "averaged": [f"{p}:{w}" for p, w in specs]}, args.out)
    print(f"averaged {', '.join(f'{p} x {w}' for p, w in specs)} -> {args.out}")


if __name__ == "__main__":
    main()
