"""Byte-level BPE: pre-tokenizer (Llama-3 split pattern), trainer, encoder/decoder, HF tokenizer.json writer.

The pre-tokenizer pattern is the Llama 3 regex
  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+
Python's `re` has no \\p{..}, so we build explicit character classes for L (Lu Ll Lt Lm Lo) and N (Nd Nl No)
from unicodedata and a White_Space class for \\s, then compile the same alternation with `re`.
Parity with the JS reference tokenizer is checked by parity_check.py.

Usage (train): /usr/bin/python3 engine/train/bpe.py   -> runs/tokenizer.json (copied to the model dir by export.py)
"""
import collections, json, os, re, sys, unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, "runs")

SPECIALS = ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>"]
VOCAB_TOTAL = 2048
BPE_VOCAB = VOCAB_TOTAL - len(SPECIALS)  # 2044 = 256 bytes + 1788 merges

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def _ranges(pred):
    out, start, prev = [], None, None
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            ok = False
        else:
            ok = pred(chr(cp))
        if ok:
            if start is None:
                start = cp
            prev = cp
        elif start is not None:
            out.append((start, prev))
            start = None
    if start is not None:
        out.append((start, prev))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in out)


def _build_regex():
    L = _ranges(lambda c: unicodedata.category(c) in ("Lu", "Ll", "Lt", "Lm", "Lo"))
    N = _ranges(lambda c: unicodedata.category(c) in ("Nd", "Nl", "No"))
    # Unicode White_Space property (what \s means in JS u-mode, minus U+FEFF which JS also includes)
    S = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
    pat = (rf"'(?:[sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD])"
           rf"|[^\r\n{L}{N}]?[{L}]+"
           rf"|[{N}]{{1,3}}"
           rf"| ?[^{S}{L}{N}]+[\r\n]*"
           rf"|[{S}]*[\r\n]+"
           rf"|[{S}]+(?![^{S}])"
           rf"|[{S}]+")
    return re.compile(pat)


_RX = None


def pretokenize(text):
    global _RX
    if _RX is None:
        _RX = _build_regex()
    return _RX.findall(text)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()
U2B = {v: k for k, v in B2U.items()}


def train(texts, n_vocab=BPE_VOCAB):
    words = collections.Counter()
    for t in texts:
        for p in pretokenize(t):
            words[p] += 1
    print("unique pre-tokens", len(words), flush=True, file=sys.stderr)
    wl = [(list(p.encode("utf-8")), c) for p, c in words.items()]
    seqs = [w for w, _ in wl]
    cnts = [c for _, c in wl]
    pair_cnt = collections.Counter()
    where = collections.defaultdict(set)
    for i, s in enumerate(seqs):
        for a, b in zip(s, s[1:]):
            pair_cnt[(a, b)] += cnts[i]
            where[(a, b)].add(i)
    merges = []
    next_id = 256
    import heapq
    heap = [(-c, p) for p, c in pair_cnt.items()]
    heapq.heapify(heap)
    while next_id < n_vocab and heap:
        negc, p = heapq.heappop(heap)
        if pair_cnt.get(p, 0) != -negc or -negc <= 0:
            continue
        if -negc < 2:
            break
        new = next_id
        next_id += 1
        merges.append(p)
        if len(merges) % 200 == 0:
            print("merge", len(merges), -negc, flush=True, file=sys.stderr)
        touched = set()
        for i in list(where[p]):
            s = seqs[i]
            c = cnts[i]
            for a, b in zip(s, s[1:]):
                pair_cnt[(a, b)] -= c
                touched.add((a, b))
            out, j = [], 0
            while j < len(s):
                if j + 1 < len(s) and s[j] == p[0] and s[j + 1] == p[1]:
                    out.append(new)
                    j += 2
                else:
                    out.append(s[j])
                    j += 1
            seqs[i] = out
            for a, b in zip(out, out[1:]):
                pair_cnt[(a, b)] += c
                where[(a, b)].add(i)
                touched.add((a, b))
        del where[p]
        pair_cnt.pop(p, None)
        for q in touched:
            if q != p and pair_cnt.get(q, 0) > 0:
                heapq.heappush(heap, (-pair_cnt[q], q))
    return merges


class ByteBPE:
    def __init__(self, merges):
        self.merges = [tuple(m) for m in merges]
        self.rank = {m: r for r, m in enumerate(self.merges)}
        self.id_bytes = {i: bytes([i]) for i in range(256)}
        for r, (a, b) in enumerate(self.merges):
            self.id_bytes[256 + r] = self.id_bytes[a] + self.id_bytes[b]
        self.n_bpe = 256 + len(self.merges)
        self.special = {s: self.n_bpe + i for i, s in enumerate(SPECIALS)}
        self.vocab_size = self.n_bpe + len(SPECIALS)
        self.cache = {}

    def _bpe(self, piece):
        r = self.cache.get(piece)
        if r is not None:
            return r
        s = list(piece.encode("utf-8"))
        rank = self.rank
        while len(s) > 1:
            best, bi = None, -1
            for j in range(len(s) - 1):
                k = rank.get((s[j], s[j + 1]))
                if k is not None and (best is None or k < best):
                    best, bi = k, j
            if best is None:
                break
            a, b = self.merges[best]
            new = 256 + best
            out, j = [], 0
            while j < len(s):
                if j + 1 < len(s) and s[j] == a and s[j + 1] == b:
                    out.append(new)
                    j += 2
                else:
                    out.append(s[j])
                    j += 1
            s = out
        if len(self.cache) < 500_000:
            self.cache[piece] = s
        return s

    def encode(self, text):
        """Plain text -> ids (special-token text is NOT recognised; same as encode(text) w/o allowSpecial)."""
        ids = []
        for p in pretokenize(text):
            ids.extend(self._bpe(p))
        return ids

    def encode_special(self, text):
        """Text that may contain special tokens (what the JS Tokenizer.encode does with added tokens)."""
        pat = "(" + "|".join(re.escape(s) for s in SPECIALS) + ")"
        ids = []
        for part in re.split(pat, text):
            if part in self.special:
                ids.append(self.special[part])
            elif part:
                ids.extend(self.encode(part))
        return ids

    def decode(self, ids):
        inv = {v: k for k, v in self.special.items()}
        out = b""
        for i in ids:
            if i in inv:
                out += inv[i].encode()
            else:
                out += self.id_bytes[i]
        return out.decode("utf-8", errors="replace")

    def tok_str(self, i):
        return "".join(B2U[b] for b in self.id_bytes[i])

    def to_hf_json(self):
        vocab = {self.tok_str(i): i for i in range(self.n_bpe)}
        assert len(vocab) == self.n_bpe, "duplicate token strings"
        merges = [[self.tok_str(a), self.tok_str(b)] for a, b in self.merges]
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [
                {"id": self.special[s], "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                 "normalized": False, "special": True}
                for s in SPECIALS
            ],
            "normalizer": None,
            "pre_tokenizer": {
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
                    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
                ],
            },
            "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            "model": {
                "type": "BPE",
                "dropout": None,
                "unk_token": None,
                "continuing_subword_prefix": None,
                "end_of_word_suffix": None,
                "fuse_unk": False,
                "byte_fallback": False,
                "ignore_merges": False,
                "vocab": vocab,
                "merges": merges,
            },
        }


CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def tokenizer_config(tok):
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1000000,
        "chat_template": CHAT_TEMPLATE,
        "added_tokens_decoder": {
            str(tok.special[s]): {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                                  "single_word": False, "special": True}
            for s in SPECIALS
        },
    }


def load(path=None):
    path = path or os.path.join(RUNS, "merges.json")
    with open(path) as f:
        return ByteBPE(json.load(f))


if __name__ == "__main__":
    import random, time
    t0 = time.time()
    with open(os.path.join(RUNS, "corpus_train.json")) as f:
        docs = json.load(f)
    rng = random.Random(1234)
    rng.shuffle(docs)
    texts, n = [], 0
    for d in docs:
        texts.append(d["text"])
        n += len(d["text"])
        if n > 3_000_000:
            break
    # add synthetic-task style text so digits/keys/markup get sensible merges
    import data as D
    texts.append(D.tokenizer_training_text(rng, 400_000))
    merges = train(texts)
    tok = ByteBPE(merges)
    with open(os.path.join(RUNS, "merges.json"), "w") as f:
        json.dump(merges, f)
    with open(os.path.join(RUNS, "tokenizer.json"), "w") as f:
        json.dump(tok.to_hf_json(), f, ensure_ascii=False)
    with open(os.path.join(RUNS, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config(tok), f, indent=1)
    sample = docs[-1]["text"][:3000]
    print(f"merges {len(merges)} vocab {tok.vocab_size} time {time.time()-t0:.1f}s "
          f"chars/token {len(sample)/len(tok.encode(sample)):.2f}", file=sys.stderr)
