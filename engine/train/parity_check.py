"""Check that our Python encoder (bpe.py) produces exactly the ids of the reference JS tokenizer
(@huggingface/tokenizers in node_modules) for the exported tokenizer.json.

Usage: /usr/bin/python3 engine/train/parity_check.py [model_dir]   (default: engine/train/runs)
Exit code 0 iff all lines match.
"""
import json, os, random, subprocess, sys, tempfile

import bpe

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

TRICKY = [
    "Hello World", "don't won't I'M SHE'S they'll we'd You've", "  leading and trailing  ", "tabs\tand\t\ttabs",
    "line1\nline2\r\nline3\n\n\nx", "numbers 1234567 3.14159 1,000,000 0xFF 2024-03-11", "café naïve résumé Ærø",
    "日本語のテキスト 中文 한국어", "emoji 😀🎉 👍🏽 ok", "math ∑ ≤ ≥ ½ ² ³ ⅓ Ⅻ", "non\u00a0breaking\u2003space\u3000x",
    "<|end|> <|user|> special-looking text", "key: value\nKEY=value\n\"json\": \"x\"", "   \n   \n", "a\u200bb\u2028c",
    "x\x0cy\x0bz\x1c\x1dw", "ǅungla ﬁle ŉ", "'S 'T 'RE 'Ll 'd's", "${HOME}/.config/app.yaml --flag=3", "\ufeffBOM",
    "Ελληνικά κείμενο", "русский текст 123", "१२३ ٤٥٦ digits", "x" * 300, "a  b   c    d", "\n\n\n", " \n \n",
]


def lines_to_check(n=4000):
    rng = random.Random(7)
    out = list(TRICKY)
    for split in ("train", "eval"):
        with open(os.path.join(HERE, "runs", f"corpus_{split}.json")) as f:
            docs = json.load(f)
        for _ in range(n // 2):
            t = rng.choice(docs)["text"]
            s = rng.randrange(len(t))
            out.append(t[s:s + rng.randint(1, 400)])
    import data as D
    c = D.Corpus("train")
    g = D.Gen(c)
    for i in range(200):
        ex = g.make(rng, rng.choice(D.TASKS), 400, 1)
        out.append(ex["docs"][0][1][:600])
        out.append(f"Question: {ex['question']}")
        out.append(ex["answer"])
        out.append(f'<doc name="{ex["docs"][0][0]}">\n')
    return out


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "runs")
    tok = bpe.ByteBPE(json.load(open(os.path.join(HERE, "runs", "merges.json"))))
    lines = lines_to_check()
    with tempfile.TemporaryDirectory() as td:
        inp = os.path.join(td, "in.json")
        with open(inp, "w") as f:
            json.dump(lines, f)
        js = f"""
const {{ Tokenizer }} = require({json.dumps(os.path.join(ROOT, 'node_modules/@huggingface/tokenizers'))});
const fs = require('fs');
const tj = JSON.parse(fs.readFileSync({json.dumps(os.path.join(d, 'tokenizer.json'))}, 'utf8'));
const tc = JSON.parse(fs.readFileSync({json.dumps(os.path.join(d, 'tokenizer_config.json'))}, 'utf8'));
const t = new Tokenizer(tj, tc);
const lines = JSON.parse(fs.readFileSync({json.dumps(inp)}, 'utf8'));
const out = lines.map(s => t.encode(s, {{ add_special_tokens: false }}).ids);
fs.writeFileSync({json.dumps(os.path.join(td, 'out.json'))}, JSON.stringify(out));
"""
        subprocess.run(["node", "-e", js], check=True)
        ref = json.load(open(os.path.join(td, "out.json")))
    bad = 0
    for s, r in zip(lines, ref):
        mine = tok.encode_special(s)
        if mine != r:
            bad += 1
            if bad <= 8:
                print("MISMATCH", repr(s[:80]), "\n  py", mine[:20], "\n  js", r[:20])
    print(f"{len(lines)} lines, {sum(len(r) for r in ref)} tokens, mismatches: {bad}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
