"""Synthetic long-document lookup tasks over real English filler text.

Each example = (docs: [(path, text)], question, answer, task). Tasks:
  passkey   - a pass key / access code hidden in filler prose
  kv        - key/value lookup in config-like files (YAML, INI, .env, JSON, TOML, key: value lists)
  fact      - "what is the X of Y" with facts stated in prose (several entities/attributes as distractors)
  span      - copy a span: TODO/FIXME comment text, a markdown section title, a man page one-line summary
  multikey  - several similar labelled keys (vault ALPHA/BRAVO..., service ports ...), ask for one
  notfound  - any of the above, but the asked key/entity is absent -> answer exactly "not found"

Token layout (the engine assembles exactly this, each segment encoded separately):
  <|user|> "\n" | per doc: '<doc name="PATH">\n' + TEXT + '\n</doc>\n' | 'Question: Q' | <|end|> "\n" <|assistant|> "\n"
  then ANSWER <|end|>.
"""
import json, os, random, re

import wording as W

# Probability that a question / needle statement / entity is drawn from wording.py's grammar instead of the original
# per-task templates (0 reproduces the runs up to v4; v5 uses 0.6). Set by train.py --varied.
VARIED = 0.0
# Probability that a varied fact example draws its attributes and entities from the corpus vocabulary
# (wording.open_attr / open_entity) rather than fixed lists, so matching a key cannot rest on having seen it (v7).
# Varied passkey and labelled examples use corpus words in their key nouns at half this rate. Set by train.py --open.
OPEN = 0.0
# Probability that a varied statement (pass key, labelled number, prose fact) is composed by wording.composed_statement /
# composed_fact (value before or after the key, linking verbs, lead-ins, qualifiers, tails) instead of a fixed shape
# (v8). 0 reproduces v5's data. Set by train.py --compose.
COMPOSE = 0.0
# Probability that a filler document gets number-dense lines (versions, dates, times, sizes, ports, log lines), at
# 4-10 lines per 1,000 characters. The training text has ~3 numbers per 1,000 characters, the held-out text ~19 (with
# 37x more version strings), and a model trained on sparse numbers answers with whatever number is near (v8).
# 0 reproduces the earlier data. Set by train.py --numeric.
NUMERIC = 0.0
# Contrast turns: the probability that an example also asks, as a further chat turn about the same documents, for a
# key like the asked one that is not there (answer "not found"); a pass-key "not found" example whose documents state
# another kind of code also asks for that one (answer: its value). The same context then trains both answers, so the
# model has to read the key rather than copy the nearest number (v8 and v10 lost "not found" as they learned to read
# more shapes). 0 keeps the earlier rate of 0.4 for the other tasks' extra "not found" turn and adds no pass-key turns,
# which reproduces the earlier data. Set by train.py --contrast.
CONTRAST = 0.0
# Open values: the probability that a word, phrase or person value is made from the corpus vocabulary
# (wording.open_value) instead of data.py's short lists. A model trained on the lists alone read "the motto of X is
# sable" but answered "not found" to "the motto of X is listen twice": it had learned which strings are values (v15).
# 0 reproduces the earlier data. Set by train.py --open-values.
OPEN_VALUES = 0.0
_VALUE_VOCAB = []  # the corpus vocabulary of the last Gen made (its texts' words)
_OPTIONS = {  # command-line flag -> (module global, help)
    "varied": ("VARIED", "probability of wording.py's question/statement grammar instead of the per-task templates"),
    "open": ("OPEN", "probability that a varied fact example takes attributes/entities from the corpus vocabulary"),
    "compose": ("COMPOSE", "probability that a varied statement is composed by wording.composed_statement/composed_fact"),
    "numeric": ("NUMERIC", "probability that a filler document gets number-dense lines"),
    "contrast": ("CONTRAST", "probability of a further 'not found' turn about an absent key like the asked one"),
    "open-values": ("OPEN_VALUES", "probability that a word, phrase or person value is made from the corpus vocabulary"),
}


def add_data_args(ap, **defaults):
    """--varied, --open, --compose, --numeric, --contrast, --open-values on an argparse parser (0: the data up to v5)."""
    for flag, (_, help_) in _OPTIONS.items():
        ap.add_argument(f"--{flag}", type=float, default=defaults.get(flag, 0.0), help=help_)


def apply_data_args(args):
    """Sets this module's data options from parsed add_data_args flags."""
    for flag, (name, _) in _OPTIONS.items():
        globals()[name] = getattr(args, flag.replace("-", "_"))

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, "runs")

SYL = ["qu", "en", "ton", "mar", "la", "vi", "ra", "dor", "el", "an", "bri", "cos", "ta", "lin", "ver", "ga", "ro", "sen",
       "mi", "ko", "zar", "do", "ne", "fal", "th", "is", "wen", "pa", "lo", "ru", "ka", "ser", "mon", "dri", "ol", "ve",
       "ha", "jun", "ber", "ly", "tor", "ix", "ca", "de", "sto", "na", "bel", "gor", "pi", "um"]
FIRST = ["Alma", "Boris", "Chen", "Dana", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kira", "Luis", "Mira",
         "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Ximena", "Yusuf", "Zoe",
         "Marta", "Pavel", "Lena", "Oskar", "Ada", "Ivan", "Noor", "Emil", "Sara", "Tomas"]
WORDS = ["amber", "falcon", "river", "cobalt", "ember", "harbor", "lunar", "maple", "nickel", "orbit", "pepper", "quartz",
         "raven", "saffron", "timber", "violet", "willow", "zephyr", "granite", "meadow", "copper", "thistle", "cedar",
         "delta", "echo", "frost", "glacier", "hollow", "iris", "juniper", "kestrel", "lotus", "marble", "nova", "onyx",
         "pine", "ridge", "sable", "tundra", "umber", "vortex", "wren", "yarrow", "basalt", "coral", "dune"]
NATO = ["ALPHA", "BRAVO", "CHARLIE", "DELTA", "ECHO", "FOXTROT", "GOLF", "HOTEL", "INDIA", "JULIET", "KILO", "LIMA",
        "MIKE", "NOVEMBER", "OSCAR", "PAPA", "ROMEO", "SIERRA", "TANGO", "VICTOR"]
DIRS = ["docs", "config", "src", "notes", "etc", "deploy", "lib", "scripts", "app", "internal", "ops", "tests", "spec",
        "design", "services/api", "services/web", "packages/core", "infra/terraform", "tools"]
STEMS = ["setup", "overview", "settings", "server", "client", "notes", "release", "install", "handbook", "runbook",
         "design", "architecture", "changelog", "faq", "usage", "guide", "meeting", "inventory", "report", "policy"]
CONF_EXT = ["yaml", "yml", "ini", "env", "json", "toml", "conf", "cfg", "properties"]
KEY_PARTS = ["max", "min", "retry", "timeout", "port", "host", "cache", "pool", "size", "log", "level", "user", "db",
             "api", "token", "worker", "queue", "batch", "limit", "rate", "buffer", "region", "bucket", "mode", "path",
             "backup", "interval", "threads", "memory", "disk", "smtp", "proxy", "session", "ttl", "shard", "replica",
             "index", "node", "cluster", "service", "auth", "secret", "feature", "flag", "depth", "count", "window"]
ATTRS = [  # (attribute phrase, value kind)
    ("capital", "name"), ("founder", "person"), ("codename", "word"), ("maintainer", "person"), ("default port", "port"),
    ("current version", "version"), ("mascot", "word"), ("budget", "money"), ("employee number", "num"),
    ("birthplace", "name"), ("launch year", "year"), ("team lead", "person"), ("license key", "code"),
    ("home directory", "path"), ("favorite color", "color"), ("population", "num"), ("serial number", "code"),
    ("room number", "num3"), ("build number", "num"), ("owner", "person")]
COLORS = ["red", "blue", "green", "teal", "orange", "purple", "yellow", "black", "white", "crimson", "navy", "olive"]
PASS_NOUNS = ["pass key", "passkey", "access code", "secret code", "PIN", "unlock code", "entry code", "door code",
              "secret number", "safe combination", "vault code", "master code", "recovery code", "pass number"]
ENT_KIND = ["the kingdom of", "the city of", "project", "the company", "the ship", "the library", "module", "the village of"]


def rname(rng, lo=2, hi=3):
    return "".join(rng.choice(SYL) for _ in range(rng.randint(lo, hi))).capitalize()


def rvalue(rng, kind):
    if OPEN_VALUES > 0 and kind in W.OPEN_VALUE_KINDS and _VALUE_VOCAB and rng.random() < OPEN_VALUES:
        return W.open_value(rng, kind, _VALUE_VOCAB, rname)
    if kind == "name":
        return rname(rng)
    if kind == "person":
        return f"{rng.choice(FIRST)} {rname(rng)}"
    if kind == "word":
        return rng.choice(WORDS) + ("-" + rng.choice(WORDS) if rng.random() < 0.4 else "")
    if kind == "port":
        return str(rng.randint(1024, 65535))
    if kind == "version":
        return f"{rng.randint(0, 12)}.{rng.randint(0, 40)}.{rng.randint(0, 99)}"
    if kind == "money":
        return f"${rng.randint(2, 950)},{rng.randint(0, 999):03d}"
    if kind == "num":
        d = rng.randint(3, 7)
        return str(rng.randint(10 ** (d - 1), 10 ** d - 1))
    if kind == "num3":
        return str(rng.randint(100, 999))
    if kind == "year":
        return str(rng.randint(1890, 2029))
    if kind == "code":
        al = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
        return "-".join("".join(rng.choice(al) for _ in range(rng.randint(3, 5))) for _ in range(rng.randint(2, 3)))
    if kind == "path":
        return "/" + "/".join(rng.choice(["home", "srv", "var", "opt", "data"]) if i == 0 else rname(rng, 1, 2).lower()
                              for i in range(rng.randint(2, 3)))
    if kind == "color":
        return rng.choice(COLORS)
    if kind == "hex":
        return "".join(rng.choice("0123456789abcdef") for _ in range(rng.randint(6, 12)))
    if kind == "bool":
        return rng.choice(["true", "false", "yes", "no", "on", "off"])
    if kind == "url":
        return f"https://{rname(rng,1,2).lower()}.{rng.choice(['internal','example.com','corp','local'])}:{rng.randint(1024,9999)}"
    if kind == "dash":
        return f"{rng.randint(100, 999)}-{rng.randint(100, 999)}"
    if kind == "num7":
        return str(rng.randint(1_000_000, 9_999_999))
    v = W.extra_value(rng, kind, WORDS, rname)
    if v is None:
        raise ValueError(kind)
    return v


def conf_value(rng):
    k = rng.choice(["num", "num", "port", "hex", "word", "bool", "url", "version", "name", "num3", "path"])
    return rvalue(rng, k)


def rkey(rng, style):
    parts = rng.sample(KEY_PARTS, rng.randint(1, 3))
    if style == "env":
        return "_".join(parts).upper()
    if style == "dot":
        return ".".join(parts)
    if style == "camel":
        return parts[0] + "".join(p.capitalize() for p in parts[1:])
    if style == "kebab":
        return "-".join(parts)
    return "_".join(parts)


def doc_path(rng, kind="prose"):
    d = rng.choice(DIRS)
    if kind == "conf":
        ext = rng.choice(CONF_EXT)
        if ext == "env":
            return rng.choice([".env", f"{d}/.env", f"{d}/production.env"])
        return f"{d}/{rng.choice(STEMS + ['app', 'database', 'service', 'defaults', 'local'])}.{ext}"
    if kind == "code":
        ext = rng.choice(["py", "ts", "js", "c", "go", "rs", "sh", "rb", "java"])
        return f"{d}/{rng.choice(STEMS + ['util', 'handler', 'main', 'worker', 'parser'])}.{ext}"
    ext = rng.choice(["md", "md", "txt", "rst", "adoc", ""])
    base = f"{d}/{rng.choice(STEMS)}" + (f"-{rng.randint(1, 12):02d}" if rng.random() < 0.3 else "")
    if ext == "":
        return rng.choice(["README", "NOTES", "LICENSE", "COPYING", f"{d}/README", "CONTRIBUTING"])
    return f"{base}.{ext}"


class Corpus:
    def __init__(self, split="train"):
        with open(os.path.join(RUNS, f"corpus_{split}.json")) as f:
            self.docs = [d["text"] for d in json.load(f)]
        self.summaries = []  # (command, one-line description) from man page NAME sections
        with open(os.path.join(RUNS, f"corpus_{split}.json")) as f:
            for d in json.load(f):
                m = re.search(r"\nNAME\n+([^\n]{3,120})\n", "\n" + d["text"][:800])
                if m:
                    mm = re.match(r"^([\w.+-]+(?:, *[\w.+-]+)*) *\\?[-\u2013] +(.{4,70})$", m.group(1).strip())
                    if mm and "\\" not in mm.group(2):
                        self.summaries.append((mm.group(1).split(",")[0].strip(), mm.group(2).strip().rstrip(".")))
        self.vocab = W.open_vocab(self.docs)

    def chunk(self, rng, nchars):
        """Contiguous paragraph-aligned chunk of roughly nchars characters."""
        for _ in range(20):
            t = rng.choice(self.docs)
            if len(t) < 200:
                continue
            start = rng.randrange(0, max(1, len(t) - nchars))
            nl = t.rfind("\n", 0, start)
            start = 0 if nl < 0 else nl + 1
            s = t[start:start + nchars]
            cut = s.rfind("\n")
            if cut > nchars * 0.6:
                s = s[:cut]
            s = s.strip()
            if len(s) > 40:
                return s
        return "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."

    def filler(self, rng, nchars):
        if rng.random() < 0.07:
            base = ("The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ")
            return (base * (nchars // len(base) + 1))[:nchars].strip()
        out, n = [], 0
        while n < nchars:
            c = self.chunk(rng, min(nchars - n + 50, rng.randint(300, 2500)))
            out.append(c)
            n += len(c) + 2
        return "\n\n".join(out)


def insert_lines(rng, text, lines, region=None):
    """Insert each line at a random paragraph/line boundary of text. region=(lo,hi) fraction of text."""
    for ln in lines:
        cands = [m.start() for m in re.finditer("\n", text)]
        lo, hi = region or (0.0, 1.0)
        n = len(text)
        cands = [c for c in cands if lo * n <= c <= hi * n]
        if not cands:
            pos = int(rng.uniform(lo, hi) * n) if n else 0
            # move to a space boundary
            sp = text.find(" ", pos)
            pos = n if sp < 0 else sp
            text = text[:pos] + "\n" + ln + "\n" + text[pos:].lstrip(" ")
        else:
            pos = rng.choice(cands)
            text = text[:pos] + "\n" + ln + text[pos:]
    return text


# ---------------------------------------------------------------- config rendering
def render_conf(rng, path, kv, comment_lines=()):
    ext = path.rsplit(".", 1)[-1] if "." in path.split("/")[-1] else "env"
    if path.endswith(".env"):
        ext = "env"
    lines = []
    com = "#" if ext not in ("json",) else None
    for c in comment_lines:
        if com:
            lines.append(f"{com} {c}")
    if ext == "json":
        body = ",\n".join(f'  "{k}": ' + (v if re.fullmatch(r"\d+|true|false", v) else f'"{v}"') for k, v in kv)
        return "{\n" + body + "\n}"
    if ext in ("ini", "cfg", "conf", "toml"):
        sec = rng.choice(["server", "database", "general", "app", "worker", "cache", "default"])
        lines.append(f"[{sec}]")
        for k, v in kv:
            if rng.random() < 0.15:
                lines.append("")
                lines.append(f"[{rng.choice(['logging', 'network', 'storage', 'limits', 'auth', 'paths'])}]")
            q = '"' if ext == "toml" and not re.fullmatch(r"[\d.]+|true|false", v) else ""
            lines.append(f"{k} = {q}{v}{q}")
        return "\n".join(lines)
    if ext == "env":
        return "\n".join(lines + [f"{k}={v}" for k, v in kv])
    if ext == "properties":
        return "\n".join(lines + [f"{k}={v}" for k, v in kv])
    # yaml / yml / other
    return "\n".join(lines + [f"{k}: {v}" for k, v in kv])


def key_style_for(path):
    if path.endswith(".env"):
        return "env"
    if path.endswith(".properties"):
        return "dot"
    if path.endswith(".json"):
        return "camel"
    return "snake"


# ---------------------------------------------------------------- tasks
def asks_absent(rng):
    """Whether an example also gets a further turn about an absent key (answer "not found"): 40% of the time, or
    CONTRAST of the time when that is higher."""
    return rng.random() < max(0.4, CONTRAST)


def extra_turns(rng, ask, vals, n, asked, missing, most):
    """Further (question, answer) turns about items 0..n-1 (up to `most`, never the asked one), plus (asks_absent) one
    about item n, which is never written (answer "not found")."""
    extra = [(ask(i), vals[i]) for i in rng.sample(range(n), min(n, most)) if i != asked]
    if not missing and asks_absent(rng):
        extra.append((ask(n), "not found"))
    rng.shuffle(extra)
    return extra


class Gen:
    def __init__(self, corpus):
        self.c = corpus
        _VALUE_VOCAB[:] = corpus.vocab

    def _filler(self, rng, nchars):
        txt = self.c.filler(rng, nchars)
        if NUMERIC > 0 and rng.random() < NUMERIC:
            txt = insert_lines(rng, txt, W.numeric_lines(rng, max(1, int(nchars / 1000 * rng.uniform(4, 10)))))
        return txt

    def _filler_docs(self, rng, n_docs, nchars):
        docs = []
        for i in range(n_docs):
            share = max(80, int(nchars / n_docs * rng.uniform(0.6, 1.4)))
            kind = rng.random()
            if kind < 0.2:
                path = doc_path(rng, "code")
                txt = self._filler(rng, share)
                cm = "#" if path.endswith((".py", ".sh", ".rb")) else "//"
                txt = "\n".join((f"{cm} {l}" if l.strip() else cm) for l in txt.split("\n"))
                docs.append([path, txt])
            elif kind < 0.4:
                path = doc_path(rng, "prose")
                txt = self._filler(rng, share)
                if path.endswith(".md"):
                    txt = f"# {rname(rng)} {rng.choice(STEMS)}\n\n" + txt
                docs.append([path, txt])
            else:
                docs.append([doc_path(rng, "prose"), self._filler(rng, share)])
        return docs

    def make(self, rng, task, nchars, n_docs, late=False):
        """Return dict(docs, question, answer, task, needle_doc, needle_text)."""
        missing = task == "notfound"
        if missing:
            task = rng.choice(["passkey", "kv", "fact", "span", "multikey", "kv", "fact"])
        fn = getattr(self, "t_" + task)
        ex = fn(rng, nchars, n_docs, missing, late)
        ex["task"] = "notfound" if missing else task
        if missing:
            ex["answer"] = "not found"
        return ex

    def _place(self, rng, docs, lines, late, doc_idx=None):
        i = (len(docs) - 1 if late else rng.randrange(len(docs))) if doc_idx is None else doc_idx
        region = (0.55, 1.0) if late else None
        docs[i][1] = insert_lines(rng, docs[i][1], lines, region)
        return i

    def t_passkey(self, rng, nchars, n_docs, missing, late):
        docs = self._filler_docs(rng, n_docs, nchars)
        key = rvalue(rng, rng.choice(["num", "num", "num", "code", "hex"]))
        noun = rng.choice(["pass key", "passkey", "access code", "secret code", "PIN", "unlock code"])
        tpl = rng.choice([
            "The {n} is {k}. Remember it. {k} is the {n}.",
            "The {n} is {k}.",
            "IMPORTANT: the {n} is {k}",
            "Note that the {n} is {k}; keep it safe.",
            "{N}: {k}",
            "> The {n} you need is {k}.",
        ])
        line = tpl.format(n=noun, N=noun.capitalize(), k=key)
        q = rng.choice([f"What is the {noun}?", f"What is the {noun} mentioned in the documents?",
                        f"Which {noun} is given in the text?", f"What {noun} is stated?"])
        if rng.random() < VARIED:
            noun = rng.choice(PASS_NOUNS)
            if OPEN > 0 and rng.random() < OPEN * 0.5:
                noun = f"{rng.choice(self.c.vocab)} {rng.choice(['code', 'number', 'key', 'pin', 'passcode'])}"
            if rng.random() < 0.3:
                key = rvalue(rng, rng.choice(["dash", "num7", "num"]))
            say = lambda n, k: (W.composed_statement(rng, n, k, self.c.vocab) if COMPOSE > 0 and rng.random() < COMPOSE
                                else W.statement(rng, n, k))
            tpl = None
            line = say(noun, key)
            q = W.question(rng, noun, bare=noun)
        unlike = lambda nouns: [n for n in nouns if n.replace(" ", "") != noun.replace(" ", "")]
        extra = []
        if missing:
            # a different kind of code is present, the asked one is not
            other = rng.choice(unlike(["pass key", "access code", "secret code", "PIN", "unlock code", "passkey"]
                                      + (PASS_NOUNS if tpl is None else [])))
            if rng.random() < 0.5:
                self._place(rng, docs, [tpl.format(n=other, N=other.capitalize(), k=key) if tpl else say(other, key)], late)
                if CONTRAST > 0 and rng.random() < CONTRAST:
                    extra.append((W.question(rng, other, bare=other), key))
            ex = dict(docs=docs, question=q, answer="not found", needle=None)
        else:
            if CONTRAST > 0 and rng.random() < CONTRAST:
                absent = rng.choice(unlike(PASS_NOUNS))
                extra.append((W.question(rng, absent, bare=absent), "not found"))
            self._place(rng, docs, [line], late)
            ex = dict(docs=docs, question=q, answer=key, needle=line)
        if extra:
            ex["extra"] = extra
        return ex

    def t_multikey(self, rng, nchars, n_docs, missing, late):
        docs = self._filler_docs(rng, n_docs, nchars)
        if rng.random() < VARIED * 0.6:
            return self._labelled(rng, docs, missing, late)
        style = rng.random()
        n = rng.randint(2, 6)
        if style < 0.5:
            labels = rng.sample(NATO, n + 1)
            kind = rng.choice(["num", "code", "num"])
            what = rng.choice(["pass key for vault {L}", "access code for door {L}", "code for locker {L}"])
            vals = [rvalue(rng, kind) for _ in labels]
            lines = [f"The {what.format(L=l)} is {v}." for l, v in zip(labels, vals)]
            ask = rng.randrange(n)
            if missing:
                ask = n  # the last label is never placed
            q = rng.choice(["What is the {w}?", "Which is the {w}?"]).format(w=what.format(L=labels[ask]))
        else:
            svc = rng.sample([rname(rng, 1, 2).lower() for _ in range(12)], n + 1)
            attr = rng.choice([("port", "port"), ("version", "version"), ("owner", "person"), ("replica count", "num3")])
            vals = [rvalue(rng, attr[1]) for _ in svc]
            lines = [rng.choice(["- {s}-service {a}: {v}", "Service {s}: {a} {v}", "{s}.{a2} = {v}"]).format(
                s=s, a=attr[0], a2=attr[0].replace(" ", "_"), v=v) for s, v in zip(svc, vals)]
            ask = n if missing else rng.randrange(n)
            q = f"What is the {attr[0]} of the {svc[ask]} service?"
        if style < 0.5:
            ask_other = lambda i: rng.choice(["What is the {w}?", "Which is the {w}?"]).format(w=what.format(L=labels[i]))
        else:
            ask_other = lambda i: f"What is the {attr[0]} of the {svc[i]} service?"
        extra = extra_turns(rng, ask_other, vals, n, ask, missing, 3)
        placed = lines[:n]
        rng.shuffle(placed)
        if late:
            self._place(rng, docs, placed, True)
        else:
            di = rng.randrange(len(docs))
            for ln in placed:
                self._place(rng, docs, [ln], False, di)
        return dict(docs=docs, question=q, answer="not found" if missing else vals[ask],
                    needle=None if missing else lines[ask], extra=extra)

    def _labelled(self, rng, docs, missing, late):
        """1-6 labelled numbers ("the secret code for amber-falcon is 4821337"), keys often sharing their first word."""
        n = rng.randint(1, 6)
        label = f"{rng.choice(W.LABEL_ADJ)} {rng.choice(W.LABEL_NOUN)}"
        words = WORDS
        if OPEN > 0 and rng.random() < OPEN * 0.5:
            label = f"{rng.choice(self.c.vocab)} {rng.choice(W.LABEL_NOUN)}"
            words = rng.sample(self.c.vocab, 24)
        first = rng.choice(words) if rng.random() < 0.5 else None
        keys = []
        while len(keys) < n + 1:
            k = W.label_key(rng, words, first)
            if k not in keys:
                keys.append(k)
        kind = rng.choice(["num7", "num7", "num", "dash", "code"])
        vals = [rvalue(rng, kind) for _ in keys]
        compose = COMPOSE > 0 and rng.random() < COMPOSE
        lines = [W.composed_statement(rng, f"{label} for {k}", v, qualify=False) if compose
                 else W.statement(rng, f"{label} for {k}", v) for k, v in zip(keys, vals)]
        ask = n if missing else rng.randrange(n)
        ask_q = lambda i: W.question(rng, f"{label} for {keys[i]}")
        extra = extra_turns(rng, ask_q, vals, n, ask, missing, 3)
        placed = lines[:n]
        rng.shuffle(placed)
        di = len(docs) - 1 if late else rng.randrange(len(docs))
        for ln in placed:
            self._place(rng, docs, [ln], late, di if rng.random() < 0.5 else None)
        return dict(docs=docs, question=ask_q(ask), answer="not found" if missing else vals[ask],
                    needle=None if missing else lines[ask], extra=extra)

    def t_kv(self, rng, nchars, n_docs, missing, late):
        docs = self._filler_docs(rng, max(1, n_docs - 1), nchars * 0.7)
        path = doc_path(rng, "conf")
        style = key_style_for(path)
        nk = rng.randint(4, 30)
        keys, seen = [], set()
        base = rkey(rng, style)
        while len(keys) < nk + 1:
            if rng.random() < 0.3:  # similar keys (shared prefix) as distractors
                k = rkey(rng, style)
                sep = {"env": "_", "dot": ".", "camel": "", "snake": "_"}[style]
                k = base + sep + (k.capitalize() if style == "camel" else k)
            else:
                k = rkey(rng, style)
            if k not in seen:
                seen.add(k)
                keys.append(k)
        vals = [conf_value(rng) for _ in keys]
        kv = list(zip(keys, vals))
        ask = nk if missing else rng.randrange(nk)
        comments = [self.c.chunk(rng, 60).split("\n")[0][:70] for _ in range(rng.randint(0, 3))]
        conf_text = render_conf(rng, path, kv[:nk], comments)
        # optionally some filler text around (e.g. a README with an embedded config block)
        if rng.random() < 0.3 and not path.endswith(".json"):
            pre = self.c.filler(rng, int(nchars * 0.15))
            conf_text = pre + "\n\n```\n" + conf_text + "\n```"
            path = path.rsplit("/", 1)[0] + "/README.md"
        if late:
            docs.append([path, conf_text])
        else:
            docs.insert(rng.randrange(len(docs) + 1), [path, conf_text])
        def ask_kv(k):
            if rng.random() < VARIED:
                thing = rng.choice([f"value of {k}", f"value of `{k}`", f"{k} value", f"{k} setting", f"setting {k}"])
                return W.question(rng, thing + (f" in {path}" if rng.random() < 0.3 else ""))
            return rng.choice([f"What is the value of {k}?", f"What is {k} set to in {path}?", f"What is `{k}`?",
                               f"What value does {k} have?", f"In {path}, what is {k}?"])
        q = ask_kv(keys[ask])
        extra = extra_turns(rng, lambda i: ask_kv(keys[i]), vals, nk, ask, missing, 4)  # keys[nk] is never written
        return dict(docs=docs, question=q, answer="not found" if missing else vals[ask],
                    needle=None if missing else keys[ask], extra=extra)

    def t_fact(self, rng, nchars, n_docs, missing, late):
        docs = self._filler_docs(rng, n_docs, nchars)
        varied = rng.random() < VARIED
        opened = varied and OPEN > 0 and rng.random() < OPEN
        def new_entity():
            if opened and rng.random() < 0.6:
                return W.open_entity(rng, self.c.vocab, rname)
            return W.entity(rng, rname, ENT_KIND) if varied else f"{rng.choice(ENT_KIND)} {rname(rng)}"
        ents = list(dict.fromkeys(new_entity() for _ in range(rng.randint(2, 5))))
        if opened:
            by_name = {}  # one kind per attribute name
            for _ in range(rng.randint(1, 3)):
                a, k = W.open_attr(rng, self.c.vocab) if rng.random() < 0.7 else rng.choice(ATTRS + W.MORE_ATTRS)
                by_name[a] = (a, k)
            attrs = list(by_name.values())
        else:
            attrs = rng.sample(ATTRS + W.MORE_ATTRS if varied else ATTRS, rng.randint(1, 3))
        facts = []
        for e in ents:
            for a, kind in attrs:
                if rng.random() < 0.7 or not facts:
                    facts.append((e, a, rvalue(rng, kind)))
        def say(e, a, v):
            if varied:
                if COMPOSE > 0 and rng.random() < COMPOSE:
                    return W.composed_fact(rng, e, a, v)
                return W.fact_statement(rng, e, a, v, more=OPEN > 0)
            E = e[0].upper() + e[1:]
            return rng.choice([f"The {a} of {e} is {v}.", f"{v} is the {a} of {e}.", f"For {e}, the {a} is {v}.",
                               f"{E} has {v} as its {a}.", f"It is recorded that the {a} of {e} is {v}."])
        lines = [say(*f) for f in facts]
        ask_i = rng.randrange(len(facts))
        e, a, v = facts[ask_i]
        if missing:
            # ask about an (entity, attr) pair that is never stated
            pairs = {(f[0], f[1]) for f in facts}
            cand = [(x, y[0]) for x in ents for y in attrs if (x, y[0]) not in pairs]
            if cand and rng.random() < 0.5:
                e, a = rng.choice(cand)
            else:
                e = new_entity()
        def ask_fact(e, a):
            if varied and rng.random() < 0.7:
                r = rng.random() if opened else 1.0
                if r < 0.25:
                    return W.question(rng, f"{a} for {e}" if r < 0.12 else f"{a} at {e}")
                return W.question(rng, f"{a} of {e}")
            return rng.choice([f"What is the {a} of {e}?", f"What is the {a} of {e}? Answer with the value only."])
        extra = [(ask_fact(f[0], f[1]), f[2]) for i, f in enumerate(facts) if i != ask_i]
        extra = rng.sample(extra, min(len(extra), 4))
        unstated = [(x, y[0]) for x in ents for y in attrs if (x, y[0]) not in {(f[0], f[1]) for f in facts}]
        if not missing and unstated and asks_absent(rng):
            extra.append((ask_fact(*rng.choice(unstated)), "not found"))
        rng.shuffle(extra)
        # The needle is the very sentence placed (say() draws a new wording on every call).
        needle = lines[ask_i]
        if varied and rng.random() < 0.4:
            # one paragraph per entity: all its facts on one line, the asked one among them
            lines = [" ".join(ln for f, ln in zip(facts, lines) if f[0] == x) for x in ents]
            lines = [ln for ln in lines if ln]
        rng.shuffle(lines)
        di = len(docs) - 1 if late else rng.randrange(len(docs))
        for ln in lines:
            self._place(rng, docs, [ln], late, di)
        q = ask_fact(e, a)
        return dict(docs=docs, question=q, answer="not found" if missing else v, needle=None if missing else needle,
                    extra=[x for x in extra if x[0] != q])

    def t_span(self, rng, nchars, n_docs, missing, late):
        docs = self._filler_docs(rng, n_docs, nchars)
        r = rng.random()
        if r < 0.35 and len(self.c.summaries) > 2:
            cmd, desc = rng.choice(self.c.summaries)
            if missing:
                cmd2 = cmd
                while cmd2 == cmd:
                    cmd2, _ = rng.choice(self.c.summaries)
                cmd, desc = cmd2, desc
            line = f"{cmd} - {desc}"
            if not missing:
                path = f"man/{cmd}.1.txt" if rng.random() < 0.5 else doc_path(rng, "prose")
                body = f"NAME\n{line}\n\nDESCRIPTION\n" + self.c.filler(rng, int(nchars * 0.3))
                docs.insert(len(docs) if late else rng.randrange(len(docs) + 1), [path, body])
            else:
                # another command's NAME section is present instead
                o, od = rng.choice(self.c.summaries)
                if o != cmd:
                    docs.append([f"man/{o}.1.txt", f"NAME\n{o} - {od}\n\n" + self.c.filler(rng, int(nchars * 0.2))])
            q = rng.choice([f"What is the one-line description of {cmd}?", f"What does {cmd} do, according to its NAME line?"])
            return dict(docs=docs, question=q, answer=desc, needle=None if missing else line)
        if r < 0.7:
            tag = rng.choice(["TODO", "FIXME", "HACK", "NOTE"])
            owner = rng.choice(FIRST).lower()
            text = self.c.chunk(rng, 200).replace("\n", " ")
            words = text.split()
            s = rng.randrange(max(1, len(words) - 8))
            span = " ".join(words[s:s + rng.randint(3, 8)]).strip(" .,;:")
            if len(span) < 8:
                span = "handle the retry loop on timeout"
            code_path = doc_path(rng, "code")
            cm = "#" if code_path.endswith((".py", ".sh", ".rb")) else "//"
            line = f"{cm} {tag}({owner}): {span}"
            body = self.c.filler(rng, int(nchars * 0.3))
            body = "\n".join((f"{cm} {l}" if l.strip() else cm) for l in body.split("\n"))
            if not missing:
                body = insert_lines(rng, body, [line], (0.5, 1.0) if late else None)
            else:
                other = rng.choice([f for f in FIRST if f.lower() != owner]).lower()
                if rng.random() < 0.6:
                    body = insert_lines(rng, body, [f"{cm} {tag}({other}): {span}"])
            docs.insert(len(docs) if late else rng.randrange(len(docs) + 1), [code_path, body])
            q = rng.choice([f"What does the {tag} comment by {owner} say?", f"What is {owner}'s {tag} note in {code_path}?"])
            return dict(docs=docs, question=q, answer=span, needle=None if missing else line)
        # markdown section title
        titles = []
        for _ in range(rng.randint(3, 6)):
            w = self.c.chunk(rng, 120).replace("\n", " ").split()
            s = rng.randrange(max(1, len(w) - 5))
            t = " ".join(w[s:s + rng.randint(2, 5)]).strip(" .,;:#*-")
            titles.append(t.capitalize() if t else rname(rng))
        path = doc_path(rng, "prose")
        path = path.rsplit(".", 1)[0] + ".md" if "." in path else path + ".md"
        parts = [f"# {rname(rng)} {rng.choice(STEMS)}"]
        nsec = len(titles) - (1 if missing else 0)
        for i in range(nsec):
            parts.append(f"## {i + 1}. {titles[i]}\n\n" + self.c.filler(rng, int(nchars * 0.25 / len(titles))))
        ask = len(titles) - 1 if missing else rng.randrange(nsec)
        body = "\n\n".join(parts)
        docs.insert(len(docs) if late else rng.randrange(len(docs) + 1), [path, body])
        q = rng.choice([f"What is the title of section {ask + 1} in {path}?", f"What is section {ask + 1} of {path} called?"])
        return dict(docs=docs, question=q, answer=titles[ask], needle=None if missing else f"## {ask + 1}. {titles[ask]}")


TASKS = ["passkey", "kv", "fact", "span", "multikey", "notfound"]
TASK_P = [0.17, 0.22, 0.2, 0.16, 0.13, 0.12]


class Encoder:
    """Turns an example into (ids, loss weights) exactly in the engine's prompt layout."""

    def __init__(self, tok, doc_lm_weight=0.1, answer_prefix=" ", extra_turns_within=0):
        self.tok = tok
        # Training only: more questions about the same documents as further chat turns, while the whole example stays
        # within this many tokens (so every needle is inside the sliding window). Each turn trains the same lookup
        # from the answer position into the documents for ~20 more tokens instead of a whole new document; the first
        # turn is exactly the engine's single-question prompt.
        self.extra_turns_within = extra_turns_within
        # The answer is trained as " value": a word after a space in the document is the token "Ġword", so with the
        # leading space the answer's first token is the very token in the document and the model only has to copy.
        # Without it every word answer starts with a token that never occurs where the value is stated. The engine
        # drops leading whitespace from answers, so users see the bare value.
        self.answer_prefix = answer_prefix
        self.sp = tok.special
        self.w = doc_lm_weight
        self.nl = tok.encode("\n")

    def prompt(self, docs, question):
        ids, w = [self.sp["<|user|>"]] + self.nl, [0.0] * (1 + len(self.nl))
        for path, text in docs:
            h = self.tok.encode(f'<doc name="{path}">\n')
            t = self.tok.encode(text)
            f = self.tok.encode("\n</doc>\n")
            ids += h + t + f
            w += [0.0] * len(h) + [self.w] * len(t) + [0.0] * len(f)
        q = self.tok.encode(f"Question: {question}")
        tail = [self.sp["<|end|>"]] + self.nl + [self.sp["<|assistant|>"]] + self.nl
        ids += q + tail
        w += [0.0] * (len(q) + len(tail))
        return ids, w

    def example(self, ex, turns_within=None):
        limit = self.extra_turns_within if turns_within is None else min(self.extra_turns_within, turns_within)
        ids, w = self.prompt(ex["docs"], ex["question"])
        a = self.tok.encode(self.answer_prefix + ex["answer"]) + [self.sp["<|end|>"]]
        n_prompt = len(ids)
        ids = ids + a
        w = w + [1.0] * len(a)
        self.first_len = len(ids)
        for q, ans in ex.get("extra", []) if limit else []:
            turn = (self.nl + [self.sp["<|user|>"]] + self.nl + self.tok.encode(f"Question: {q}") + [self.sp["<|end|>"]]
                    + self.nl + [self.sp["<|assistant|>"]] + self.nl)
            a = self.tok.encode(self.answer_prefix + ans) + [self.sp["<|end|>"]]
            if len(ids) + len(turn) + len(a) > limit:
                break
            ids = ids + turn + a
            w = w + [0.0] * len(turn) + [1.0] * len(a)
        # target weights: weight[i] applies to predicting ids[i] from position i-1
        return ids, w, n_prompt


def sample_example(gen, enc, rng, target_len, W=512, margin=24, max_len=None):
    """Example with ~target_len prompt tokens; needle (if any) within the last W - margin tokens before answer."""
    max_len = max_len or int(target_len * 1.25) + 40
    for attempt in range(12):
        task = rng.choices(TASKS, TASK_P)[0]
        n_docs = rng.choices([1, 2, 3], [0.5, 0.3, 0.2])[0]
        nchars = max(60, int((target_len - 25 - 14 * n_docs) * 3.1))
        late = target_len > W - 80
        ex = gen.make(rng, task, nchars, n_docs, late=late)
        ids, w, n_prompt = enc.example(ex, turns_within=int(target_len * 1.5) + 60)
        if enc.first_len > max_len or n_prompt < 40:
            nchars = int(nchars * 0.8)
            continue
        if ex.get("needle") and n_prompt > W - margin:
            # locate needle token position: tokens before the needle's doc text + its char offset
            pre_ids = [0, 0]
            pos = None
            for path, text in ex["docs"]:
                h = enc.tok.encode(f'<doc name="{path}">\n')
                k = text.find(ex["needle"])
                if k >= 0:
                    pos = len(pre_ids) + len(h) + len(enc.tok.encode(text[:k]))
                    break
                pre_ids += h + enc.tok.encode(text) + enc.tok.encode("\n</doc>\n")
            if pos is None or n_prompt - pos > W - margin:
                continue
        return ex, ids, w, n_prompt
    return None


def tokenizer_training_text(rng, nchars):
    """Synthetic task-flavoured text to include in BPE training (keys, configs, markup)."""
    class _C:
        docs = ["The quick brown fox jumps over the lazy dog.\nLorem ipsum dolor sit amet."]
        summaries = [("ls", "list directory contents"), ("cp", "copy files"), ("mv", "move files")]
        chunk = Corpus.chunk
        filler = Corpus.filler
    g = Gen(_C())
    out, n = [], 0
    while n < nchars:
        t = rng.choice(TASKS)
        ex = g.make(rng, t, 300, 1)
        s = "".join(f'<doc name="{p}">\n{x}\n</doc>\n' for p, x in ex["docs"]) + f"Question: {ex['question']}\n{ex['answer']}\n"
        out.append(s)
        n += len(s)
    return "\n".join(out)


MEM_BLOCK, MEM_HEAD, MEM_TAIL = 128, 32, 32  # the engine's block size and a pick's neighbours (prefill.ts)


def sample_superposed(gen, enc, rng, target_len, sinks=4):
    """An example in block memory's layout (train.py --superpose): the engine brings a far block back as pinned slots
    placed at the positions right before the question, sharing them with the newest window tokens, its keys computed
    in its own context and re-rotated. Returns (ex, ids, w, n_prompt, s, q_start): tokens [s, s + MEM_TAIL + MEM_BLOCK +
    MEM_HEAD) are the retrieved range (the 128-token block holding the needle, or any block for `not found`, with the
    last 32 tokens of the block before and the first 32 of the block after); the model hides them from every other
    document token and lets the question (from q_start on) see them only as the relocated copy."""
    span = MEM_TAIL + MEM_BLOCK + MEM_HEAD
    for _ in range(20):
        task = rng.choices(TASKS, TASK_P)[0]
        n_docs = rng.choices([1, 2, 3], [0.5, 0.3, 0.2])[0]
        nchars = max(60, int((target_len - 25 - 14 * n_docs) * 3.1))
        ex = gen.make(rng, task, nchars, n_docs, late=False)
        ids, w, n_prompt = enc.example(ex, turns_within=int(target_len * 1.5) + 60)
        q = enc.tok.encode(f"Question: {ex['question']}")
        q_start = n_prompt - len(q) - 2 - 2 * len(enc.nl)
        if q_start < span + sinks + MEM_BLOCK or enc.first_len > int(target_len * 1.3) + 60:
            continue
        if ex.get("needle") and task != "notfound":
            pos, pre = None, 2
            for path, text in ex["docs"]:
                h = enc.tok.encode(f'<doc name="{path}">\n')
                k = text.find(ex["needle"])
                if k >= 0:
                    pos = pre + len(h) + len(enc.tok.encode(text[:k]))
                    break
                pre += len(h) + len(enc.tok.encode(text)) + len(enc.tok.encode("\n</doc>\n"))
            if pos is None:
                continue
            b = pos // MEM_BLOCK
        else:
            b = rng.randrange(1, max(2, (q_start - MEM_HEAD) // MEM_BLOCK))
        s = max(sinks, b * MEM_BLOCK - MEM_TAIL)
        s = min(s, q_start - span)
        if ex.get("needle") and task != "notfound" and not (s <= pos and pos + 4 <= s + span):
            continue
        return ex, ids, w, n_prompt, s, q_start
    return None
