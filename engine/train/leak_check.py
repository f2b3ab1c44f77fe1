"""Counts training lines and questions in the shapes of `attend eval`'s own templates (engine/eval/tasks.ts).

The harness is meant to test paraphrase: its statement sentences and fixed questions should never be trained on. This
samples training examples with the given data options and counts (a) questions equal to one of the harness's fixed
questions (wording.HELD_OUT) and (b) document lines that match one of the harness's statement templates, written
here as regular expressions with the key and value left open. Exit status 1 if anything matched.
Usage: /usr/bin/python3 engine/train/leak_check.py [--n 3000] [--varied 0.7] [--compose 0.5] [--open 0] [--numeric 0]
"""
import argparse, random, re, sys

import data as D
import wording as W

K = r"[\w.-]+"  # a key or value
EVAL_STATEMENTS = {  # engine/eval/tasks.ts PASSKEY_TEMPLATES, MAGIC_TEMPLATES, FACT_TEMPLATES
    "passkey: remember this number": rf"remember this number, it is the passkey: {K}",
    "passkey: (passkey = k)": rf"\(passkey = {K}\)",
    "passkey: whoever finds this line": rf"whoever finds this line: {K} is the passkey",
    "passkey: for this session ->": rf"passkey for this session -> {K}",
    "passkey: do not lose it": rf"do not lose it: passkey {K}",
    "magic: one of the special magic numbers": r"one of the special magic numbers for",
    "magic: hidden fact": r"hidden fact: the special magic number",
    "magic: for the record": r"for the record, .* has special magic number",
    "fact: according to the registry": r"according to the registry, .*'s .* happens to be",
    "fact: records show": r"records show .* as the .* for",
    "fact: lists its": r"lists its .* as ",
    "fact: staff at gave": r"staff at .* gave .* as the",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    D.add_data_args(ap, varied=0.7, compose=0.5)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    D.apply_data_args(args)
    gen = D.Gen(D.Corpus("train"))
    rng = random.Random(args.seed)
    pats = {k: re.compile(v, re.I) for k, v in EVAL_STATEMENTS.items()}
    hits = {k: 0 for k in pats}
    questions = held_out = lines = 0
    for _ in range(args.n):
        ex = gen.make(rng, rng.choice(D.TASKS), rng.randint(300, 2500), rng.randint(1, 3))
        for q in [ex["question"]] + [q for q, _ in ex.get("extra", [])]:
            questions += 1
            held_out += q in W.HELD_OUT
        for _, text in ex["docs"]:
            for ln in text.split("\n"):
                lines += 1
                for k, p in pats.items():
                    if p.search(ln):
                        hits[k] += 1
    print(f"{args.n} examples: {questions} questions, {held_out} equal to a harness question; {lines} document lines, "
          f"{sum(hits.values())} in a harness statement shape")
    for k, v in hits.items():
        if v:
            print(f"  {k}: {v}")
    sys.exit(1 if held_out or any(hits.values()) else 0)


if __name__ == "__main__":
    main()
