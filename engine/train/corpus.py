"""Build the plain-text corpora (train / eval) from text that ships with this Debian machine.

TRAIN sources: /usr/share/common-licenses/*, /usr/share/doc/*/copyright,
               man pages in sections 1, 5, 7 (English, /usr/share/man/man{1,5,7}), deterministic subset.
EVAL sources (never read by training): man section 8 (/usr/share/man/man8), /usr/share/doc/*/README*,
               /usr/share/doc/*/changelog.Debian.gz.

Output: runs/corpus_train.json, runs/corpus_eval.json = list of {"src": path, "text": str}.
Usage: /usr/bin/python3 engine/train/corpus.py
"""
import glob, gzip, hashlib, json, os, re, sys

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, "runs")


def _h(s):
    return int(hashlib.sha1(s.encode()).hexdigest()[:8], 16)


def read_any(path):
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read(400_000)
        else:
            with open(path, "rb") as f:
                raw = f.read(400_000)
    except (OSError, EOFError):
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


_ESC = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),
    (re.compile(r"\\s[+-]?\d"), ""),
    (re.compile(r"\\\*(\(..|\[[^\]]*\]|.)"), ""),
    (re.compile(r"\\\((em|en)"), "-"),
    (re.compile(r"\\\((lq|rq|dq)"), '"'),
    (re.compile(r"\\\((oq|cq|aq)"), "'"),
    (re.compile(r"\\\(bu"), "*"),
    (re.compile(r"\\\(..|\\\[[^\]]*\]"), ""),
    (re.compile(r"\\[-]"), "-"),
    (re.compile(r"\\[&|^%:]"), ""),
    (re.compile(r"\\e"), "\\\\"),
    (re.compile(r"\\ "), " "),
    (re.compile(r"\\(.)"), r"\1"),
]
_KEEP_ARGS = {"SH", "SS", "B", "I", "BR", "BI", "IB", "IR", "RB", "RI", "TP", "IP", "Nm", "Nd", "Sh", "Ss", "Fl", "Ar", "Pa", "Em", "Dq", "Xr"}


def strip_roff(src):
    out = []
    for line in src.split("\n"):
        if line.startswith('.\\"') or line.startswith("'\\\"") or line.startswith('\\"'):
            continue
        if line.startswith(".") or line.startswith("'"):
            parts = line[1:].strip().split(None, 1)
            if not parts:
                continue
            mac = parts[0]
            if mac in _KEEP_ARGS and len(parts) > 1:
                arg = parts[1].replace('"', "")
                if mac in ("SH", "Sh"):
                    out.append("")
                    out.append(arg.upper())
                elif mac in ("BR", "BI", "IB", "IR", "RB", "RI"):
                    out.append("".join(arg.split()))
                else:
                    out.append(arg)
            elif mac in ("PP", "LP", "P", "Pp", "sp", "br"):
                out.append("")
            continue
        for rx, rep in _ESC:
            line = rx.sub(rep, line)
        out.append(line)
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def clean(text):
    text = text.replace("\r\n", "\n").replace("\t", "    ")
    text = "".join(ch for ch in text if ch == "\n" or ch >= " ")
    text = re.sub(r"[ ]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def collect(split):
    items = []
    if split == "train":
        files = sorted(glob.glob("/usr/share/common-licenses/*"))
        files += sorted(glob.glob("/usr/share/doc/*/copyright"))
        man = []
        for sec in ("1", "5", "7"):
            man += sorted(glob.glob(f"/usr/share/man/man{sec}/*.gz"))
        # deterministic subset of man pages (hash of path)
        man = [p for p in man if _h(p) % 6 == 0]
    else:
        files = sorted(glob.glob("/usr/share/doc/*/README*"))
        files += sorted(glob.glob("/usr/share/doc/*/changelog.Debian.gz"))
        man = sorted(glob.glob("/usr/share/man/man8/*.gz"))
    seen = set()
    for p in files + man:
        if os.path.islink(p) or not os.path.isfile(p):
            continue
        raw = read_any(p)
        if not raw:
            continue
        if "/man/" in p:
            if raw.startswith(".so "):
                continue
            raw = strip_roff(raw)
        t = clean(raw)
        if len(t) < 200:
            continue
        k = hashlib.sha1(t.encode()).hexdigest()
        if k in seen:
            continue
        seen.add(k)
        items.append({"src": p, "text": t[:60_000]})
    return items


if __name__ == "__main__":
    os.makedirs(RUNS, exist_ok=True)
    for split in ("train", "eval"):
        items = collect(split)
        with open(os.path.join(RUNS, f"corpus_{split}.json"), "w") as f:
            json.dump(items, f)
        print(split, len(items), "docs", sum(len(i["text"]) for i in items), "chars", file=sys.stderr)
