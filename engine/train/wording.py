"""A small grammar of question and statement wordings, so the model learns lookup rather than a handful of templates.

v3 was trained on ~4 question templates per task and scored well on those but answered "not found" to most wordings it
had not seen (EVALUATION.md). Every function here composes a wording from independent parts (opener, object, place,
instruction, punctuation/case noise), so a run sees hundreds of forms. The evaluation harness's templates live in
engine/eval/tasks.ts and are *not* reproduced here: `HELD_OUT` lists its fixed question strings (those that take no key)
and `question()` never returns one of them; leak_check.py counts sampled training questions and statements in the
harness's shapes.
"""
import collections
import re


# Fixed (key-free) question strings of the held-out harness: excluded so the eval stays a test of paraphrase.
HELD_OUT = {
    "Which number is the passkey?",
    "Tell me the passkey that is hidden in the text.",
    "What passkey do the documents give?",
}

_WHERE = ["", "", "", " in the documents", " in the text", " in these files", " according to the documents",
          " stated in the notes", " given above", " written in the files", " mentioned here", " from the provided files",
          " in the material above", " that the text states", " recorded in the documents"]
_TAIL = ["", "", "", "", " Answer with the value only.", " Reply with just the value.", " Only the value, please.",
         " Be brief.", " Give only the answer.", " Just the value."]


def _noise(rng, q):
    r = rng.random()
    if r < 0.06:
        q = q[0].lower() + q[1:]
    elif r < 0.10:
        q = q.rstrip("?.") if q.endswith(("?", ".")) else q
    return q


def question(rng, thing, bare=None):
    """A question asking for the value of `thing` ("pass key", "port of the api service", "value of MAX_SIZE").

    `bare` is the head noun without qualifiers (e.g. "passkey") for forms like "Which passkey is given?"; None when the
    thing is a relation ("founder of project X") that only reads well with the full phrase.
    """
    for _ in range(8):
        where = rng.choice(_WHERE)
        forms = [
            f"What is the {thing}{where}?",
            f"What's the {thing}{where}?",
            f"Tell me the {thing}{where}.",
            f"Give me the {thing}{where}.",
            f"Find the {thing}{where}.",
            f"Look up the {thing}{where}.",
            f"Please state the {thing}{where}.",
            f"I need the {thing}{where}.",
            f"Can you tell me the {thing}{where}?",
            f"Could you find the {thing}{where}?",
            f"Do you know the {thing}{where}?",
            f"Report the {thing}{where}.",
            f"What does the text say the {thing} is?",
            f"According to the documents, what is the {thing}?",
            f"Which value is the {thing}{where}?",
            f"What value is given for the {thing}{where}?",
            f"The {thing}{where}: what is it?",
            f"{thing[0].upper() + thing[1:]}{where}?",
        ]
        if bare:
            forms += [f"Which {bare} is given{where}?", f"What {bare} is stated{where}?", f"What {bare} appears{where}?",
                      f"Which {bare} does the text contain?", f"What {bare} do the notes mention?",
                      f"Tell me which {bare} is written down{where}."]
        q = _noise(rng, rng.choice(forms) + rng.choice(_TAIL))
        if q not in HELD_OUT:
            return q
    return f"What is the {thing}?"


def statement(rng, noun, value):
    """A line stating that `noun` (e.g. "secret code for amber-falcon") has `value`."""
    N = noun[0].upper() + noun[1:]
    return rng.choice([
        f"The {noun} is {value}.",
        f"{N}: {value}",
        f"{N} = {value}",
        f"{N} -> {value}",
        f"({noun}: {value})",
        f"{value} is the {noun}.",
        f"Note: the {noun} is {value}.",
        f"Keep this safe: {noun} {value}.",
        f"The {noun} you need is {value}.",
        f"Remember, the {noun} is {value}.",
        f"For reference, {noun}: {value}",
        f"Write it down: the {noun} is {value}.",
        f"{N} is set to {value}.",
        f"We were told the {noun} is {value}.",
        f"{value} - that is the {noun}.",
        f"Important: {noun} {value}",
        f"The {noun} has been set to {value}; do not share it.",
        f"If anyone asks, the {noun} is {value}.",
    ])


def fact_statement(rng, e, a, v, more=False):
    """A prose sentence stating attribute `a` of entity `e` is `v` (e like "the city of Marla", "project Quenton").

    `more` adds v7's 14 further shapes (data.OPEN > 0); without it the choice is v5's, so v5's data is reproduced.
    """
    E = e[0].upper() + e[1:]
    src = rng.choice(["census", "ledger", "handbook", "archive", "yearbook", "inventory", "minutes", "gazette"])
    return rng.choice([
        f"The {a} of {e} is {v}.", f"{v} is the {a} of {e}.", f"For {e}, the {a} is {v}.", f"{E} has {v} as its {a}.",
        f"It is recorded that the {a} of {e} is {v}.",
        f"According to the {src}, the {a} of {e} is {v}.",
        f"{E}'s {a} is {v}.",
        f"The {src} lists the {a} of {e}: {v}.",
        f"{E}'s {a}: {v}.",
        f"The {a} for {e} was given as {v}.",
        f"Ask anyone in {e} and they will tell you the {a} is {v}.",
        f"{E} reports its {a} as {v}.",
        f"As for {e}, its {a} is {v}.",
        f"By the {src}'s account, {e} has the {a} {v}.",
        f"Most people know that the {a} of {e} is {v}.",
    ] + ([] if not more else [  # v7: the value before, between or after entity and attribute, with linking words
        f"The {src} gives {v} for the {a} of {e}.",
        f"{E} uses {v} as its {a}.",
        f"At {e}, the {a} is {v}.",
        f"The {a} at {e} is {v}.",
        f"{v}, says the {src}, is the {a} of {e}.",
        f"In the {src}, {e} appears with the {a} {v}.",
        f"{E} \u2014 {a}: {v}.",
        f"The {src} entry for {e} shows the {a} {v}.",
        f"Per the {src}, {e}'s {a} is {v}.",
        f"It turns out that {e}'s {a} is {v}.",
        f"{E} set its {a} to {v}.",
        f"We note that {e} has the {a} {v}.",
        f"{E} keeps {v} as its {a}.",
        f"The {a} ({e}): {v}.",
    ]))


# Words that `attend eval` uses for its fact attributes and entity kinds (engine/eval/tasks.ts). Open-vocabulary
# attributes and entities are drawn from the training corpus minus these, so the eval's keys stay unseen as keys.
EVAL_KEY_WORDS = {"chief", "engineer", "founding", "year", "call", "sign", "postal", "code", "telephone", "extension",
                  "motto", "head", "archivist", "opening", "night", "warden", "inventory", "observatory", "ferry",
                  "line", "choir", "brewery", "lighthouse", "orchestra", "paper", "mill", "archive", "botanical",
                  "garden", "weather", "station", "special", "magic", "number", "passkey"}
_STOP = {"shall", "which", "their", "there", "these", "those", "other", "about", "would", "could", "should", "where",
         "being", "after", "before", "while", "under", "above", "below", "every", "might", "whether", "because",
         "within", "without", "through", "again", "against", "between", "during", "further", "having", "until",
         "upon", "into", "than", "then", "them", "they", "this", "that", "with", "from", "have", "were", "what",
         "when", "will", "your", "also", "only", "such", "some", "more", "most", "must", "each", "both", "does",
         "done", "here", "very", "just", "been", "over", "many", "much", "made", "make", "same", "well", "even"}


def open_vocab(texts, min_count=30):
    """Lower-case words of 4-10 letters seen at least `min_count` times, minus stop words and the eval's key words."""
    c = collections.Counter()
    for t in texts:
        c.update(re.findall(r"\b[a-z]{4,10}\b(?!')", t))
    return sorted(w for w, n in c.items() if n >= min_count and w not in _STOP and w not in EVAL_KEY_WORDS)


OPEN_KINDS = ["person", "year", "num", "tag", "zip", "ext", "phrase", "word", "code", "name", "num3", "money",
              "version", "num7", "dash"]


def open_attr(rng, vocab):
    """(attribute phrase, value kind): one or two corpus words ("harvest", "signal colour"), any value kind."""
    a = rng.choice(vocab) if rng.random() < 0.4 else f"{rng.choice(vocab)} {rng.choice(vocab)}"
    return a, rng.choice(OPEN_KINDS)


OPEN_VALUE_KINDS = ("word", "phrase", "person")
# Short words that join a phrase value ("keep to the left"); the corpus vocabulary has only words of 4-10 letters.
LINK_WORDS = ["for", "and", "the", "of", "is", "in", "to", "all", "no", "by", "on", "at", "as", "we", "not", "our"]


def open_value(rng, kind, vocab, rname):
    """A value made of corpus words: a word ("lantern"), a phrase of 2-4 words ("harvest of the river"), or a person
    whose first and last names are made-up syllables or capitalised corpus words ("Tovira Kettleson")."""
    if kind == "word":
        return rng.choice(vocab) + ("-" + rng.choice(vocab) if rng.random() < 0.2 else "")
    if kind == "phrase":
        words = [rng.choice(vocab) for _ in range(rng.randint(2, 4))]
        if len(words) >= 3 and rng.random() < 0.6:
            words[rng.randrange(1, len(words) - 1)] = rng.choice(LINK_WORDS)
        return " ".join(words)
    first = rname(rng) if rng.random() < 0.5 else rng.choice(vocab).capitalize()
    r = rng.random()
    last = rname(rng, 2, 4) if r < 0.4 else rng.choice(vocab).capitalize() + (rng.choice(["son", "er", "ley", "ton", "ford", "well"]) if r < 0.7 else "")
    return f"{first} {last}"


def open_entity(rng, vocab, rname):
    """An entity named with a made-up name and a corpus word: "the Marla pension", "Tonvi Deposit", "the ledger of Kora"."""
    r = rng.random()
    w = rng.choice(vocab)
    if r < 0.5:
        return f"the {rname(rng)} {w}"
    if r < 0.75:
        return f"{rname(rng)} {w.capitalize()}"
    return f"the {w} of {rname(rng)}"


# Entities and attributes beyond data.py's lists, for "what is the A of E" questions in new shapes.
PLACE = ["harbour", "observatory", "mill", "guild", "station", "orchard", "lighthouse", "brewery", "academy", "museum",
         "bakery", "foundry", "quarry", "monastery", "theatre", "depot", "clinic", "ferry", "market", "workshop"]
MORE_ATTRS = [  # (attribute phrase, value kind from data.rvalue or the kinds below)
    ("head gardener", "person"), ("radio frequency", "freq"), ("gate code", "tag"), ("postcode", "zip"),
    ("phone extension", "ext"), ("slogan", "phrase"), ("head of security", "person"), ("year of opening", "year"),
    ("fleet number", "tag"), ("tax number", "num"), ("map reference", "tag"), ("chief cook", "person"),
    ("oldest member", "person"), ("ticket price", "money"), ("bell count", "num3"), ("motto", "phrase"),
    ("harbour master", "person"), ("registration mark", "tag"), ("founding date", "year"), ("secretary", "person")]
LABEL_ADJ = ["secret", "special", "hidden", "reference", "assigned", "lucky", "official", "private", "backup",
             "emergency", "internal", "personal"]
LABEL_NOUN = ["number", "code", "value", "id", "pin", "token", "key"]


def extra_value(rng, kind, words, rname):
    if kind == "freq":
        return f"{rng.randint(88, 170)}.{rng.randint(0, 99):02d} MHz"
    if kind == "tag":
        L = "BCDFGHJKLMNPRSTVWXZ"
        return f"{rng.choice(L)}{rng.choice(L)}-{rng.randint(100, 999)}"
    if kind == "zip":
        return str(rng.randint(10000, 99999))
    if kind == "ext":
        return str(rng.randint(1000, 9999))
    if kind == "phrase":
        return " ".join(rng.sample(words, rng.randint(2, 3)))
    return None


def entity(rng, rname, ent_kind):
    """An entity name: data.py's "the city of X" shapes or new "the X harbour" / "X station" shapes."""
    r = rng.random()
    if r < 0.45:
        return f"{rng.choice(ent_kind)} {rname(rng)}"
    if r < 0.85:
        return f"the {rname(rng)} {rng.choice(PLACE)}"
    return f"{rname(rng)} {rng.choice(PLACE).capitalize()}"


def label_key(rng, words, first=None):
    """A key for labelled values: "amber-falcon", "amber falcon", "AMBER-7"; `first` fixes the first word."""
    a = first or rng.choice(words)
    b = rng.choice([w for w in words if w != a])
    r = rng.random()
    if r < 0.6:
        return f"{a}-{b}"
    if r < 0.8:
        return f"{a} {b}"
    return f"{a}-{rng.randint(2, 99)}"


# ------------------------------------------------------------------ composed statements (v8, data.COMPOSE)
# v5 misses pass keys stated with the value *before* the noun and a clause after it, and prose facts whose verb is not
# "is" (measured per shape in engine/train/README.md). These builders compose a statement from independent parts: an
# optional lead-in, a core in which the value comes before, between or after the key, a linking verb phrase, an
# optional qualifier after the noun and an optional tail, so no single surface form is what the model learns to
# match. `HELD_OUT_STATEMENT_PHRASES` are phrases of the harness's own templates that are never emitted.
HELD_OUT_STATEMENT_PHRASES = ("happens to be", "records show", "lists its", "staff at", "whoever finds",
                              "for this session", "do not lose it", "remember this number", "opens the archive",
                              "hidden fact", "for the record", "one of the special", "according to the registry")
_LEAD = ["Note", "Reminder", "Heads up", "Attention", "Aside", "By the way", "P.S.", "Also", "Update", "Careful",
         "For whoever reads this", "Listen", "Before you go", "Quick note", "As agreed", "Mind this", "Psst"]
_LINK = ["is", "is", "was", "is now", "is still", "remains", "stays", "reads", "is set to", "was set to",
         "is listed as", "was recorded as", "is given as", "turned out to be", "is known to be", "equals", "became",
         "has been", "will be", "should be"]
_VFIRST = ["{v} {link} the {n}{q}", "{v} {link} what the {n}{q} is", "{v} serves as the {n}{q}",
           "{v} was chosen as the {n}{q}", "{v} works as the {n}{q}", "{v} counts as the {n}{q}",
           "{v}, which is the {n}{q}", "{v} (the {n}{q})", "{v}: the {n}{q}", "use {v} as the {n}{q}",
           "they picked {v} for the {n}{q}", "someone wrote {v} as the {n}{q}"]
_NFIRST = ["the {n}{q} {link} {v}", "the {n}{q}: {v}", "the {n}{q} = {v}", "the {n}{q} -> {v}", "{n}{q} {v}",
           "the {n}{q}, {v}", "the {n}{q} ({v})", "the {n}{q} you want {link} {v}", "our {n}{q} {link} {v}",
           "the {n}{q} that we use {link} {v}"]
_QUAL_VERB = ["opens", "unlocks", "guards", "starts", "protects", "releases", "enables", "resets", "controls"]
_STMT_TAIL = ["", "", "", ". Keep it secret", "; keep it safe", ". Tell no one", " until further notice",
              ", as before", " (see above)", ". Thanks", "; it changes next month", ", written twice to be sure",
              ". Good luck", " for now", ", nothing else"]


def _held_out(s):
    """Whether `s` contains a phrase of the harness's own templates."""
    low = s.lower()
    return any(p in low for p in HELD_OUT_STATEMENT_PHRASES)


def _qualifier(rng, vocab):
    r = rng.random()
    if r < 0.5 or not vocab:
        return ""
    w = rng.choice(vocab)
    if r < 0.75:
        return f" that {rng.choice(_QUAL_VERB)} the {w}"
    return rng.choice([f" for the {w}", f" of the {w}", f" to the {w}", " in use", " of the day", " we agreed on"])


def composed_statement(rng, noun, value, vocab=(), qualify=True):
    """A line stating `noun` has `value`, composed from lead-in / core (value first or noun first) / qualifier / tail.

    `qualify` allows a clause after the noun ("that opens the cellar"); off where the noun alone must identify the key
    among similar ones (labelled multikey lines)."""
    for _ in range(20):
        q = _qualifier(rng, vocab) if qualify else ""
        core = rng.choice(_VFIRST if rng.random() < 0.5 else _NFIRST).format(v=value, n=noun, q=q, link=rng.choice(_LINK))
        r = rng.random()
        if r < 0.35:
            core = f"{rng.choice(_LEAD)}: {core}"
        elif r < 0.5 and vocab:
            core = f"{' '.join(rng.sample(vocab, rng.randint(2, 4))).capitalize()}: {core}"
        line = core[0].upper() + core[1:] + rng.choice(_STMT_TAIL) + rng.choice([".", ".", "", "!"])
        if not _held_out(line):
            return line
    return f"The {noun} is {value}."


_FACT_VFIRST = ["{v} {link} the {a} of {e}", "{v} {link} {e}'s {a}", "{v} is what {e} has as its {a}",
                "the {src} shows {v} as {e}'s {a}", "{v} was noted down as the {a} for {e}",
                "they named {v} as the {a} of {e}", "{v} counts as the {a} of {e}"]
_FACT_EFIRST = ["{e}'s {a} {link} {v}", "{e} has its {a} at {v}", "{e} named {v} as its {a}",
                "{e} keeps the {a} {v}", "{e}, whose {a} {link} {v}", "{e} (its {a}: {v})",
                "in {e} the {a} {link} {v}", "the {a} of {e} {link} {v}", "the {a} for {e} {link} {v}",
                "asked about its {a}, {e} said {v}", "over at {e}, the {a} {link} {v}"]
_SRC = ["census", "ledger", "handbook", "yearbook", "minutes", "gazette", "almanac", "logbook", "survey", "charter"]


def composed_fact(rng, e, a, v):
    """A prose sentence stating attribute `a` of entity `e` is `v`, from the same parts as `composed_statement`."""
    for _ in range(20):
        core = rng.choice(_FACT_VFIRST if rng.random() < 0.4 else _FACT_EFIRST).format(
            v=v, e=e, a=a, link=rng.choice(_LINK), src=rng.choice(_SRC))
        r = rng.random()
        if r < 0.3:
            src = rng.choice(_SRC)
            core = rng.choice([f"according to the {src}, {core}", f"going by the {src}, {core}", f"per the {src}: {core}",
                               f"the {src} says {core}", f"the {src} notes that {core}", f"in the {src}, {core}"])
        elif r < 0.45:
            core = f"{rng.choice(['It seems', 'We hear', 'Apparently', 'As it turns out', 'Oddly enough', 'Clearly'])}" \
                   f"{rng.choice([',', ''])} {core}"
        line = core[0].upper() + core[1:] + "."
        if not _held_out(line):
            return line
    return f"The {a} of {e} is {v}."


# ------------------------------------------------------------------ number-dense filler lines (v10, data.NUMERIC)
_MON = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_UNIT = ["ms", "s", "MB", "KB", "GB", "%", "rpm", "px", "lines", "files", "requests/s", "items"]
_LEVEL = ["INFO", "WARN", "DEBUG", "ERROR", "NOTICE"]
_WHAT = ["build", "upload", "sync", "backup", "test run", "import", "migration", "deploy", "scan", "rebuild"]


def _ver(rng):
    v = ".".join(str(rng.randint(0, 20)) for _ in range(rng.choice([2, 3, 3, 4])))
    return v + (f"-{rng.randint(1, 9)}" if rng.random() < 0.3 else "")


def _date(rng):
    y, m, d = rng.randint(1995, 2030), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice([f"{y}-{m:02d}-{d:02d}", f"{d} {_MON[m - 1]} {y}", f"{_MON[m - 1]} {d}, {y}", f"{d:02d}/{m:02d}/{y}"])


def numeric_lines(rng, n):
    """`n` lines dense with numbers that answer nothing: version notes, log lines, measurements, table rows."""
    out = []
    for _ in range(n):
        w = rng.choice(_WHAT)
        t = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
        out.append(rng.choice([
            f"Version {_ver(rng)} ({_date(rng)}): {w} fixes, {rng.randint(2, 40)} changes.",
            f"{_date(rng)} {t} {rng.choice(_LEVEL)} {w} finished in {rng.randint(1, 999)} {rng.choice(_UNIT)}",
            f"- {w}: {rng.randint(1, 9999)} {rng.choice(_UNIT)} -> {rng.randint(1, 9999)} {rng.choice(_UNIT)}",
            f"| {rng.randint(1, 64)} | {rng.uniform(0, 100):.1f} | {rng.randint(0, 100)}% | {_ver(rng)} |",
            f"Updated to {_ver(rng)} on {_date(rng)}; previous {_ver(rng)}.",
            f"  -- {rng.randint(1, 12)}.{rng.randint(0, 99)} {w} on port {rng.randint(1024, 65535)}, pid {rng.randint(100, 99999)}",
            f"See section {rng.randint(1, 20)}.{rng.randint(1, 9)} (page {rng.randint(2, 400)}), revised {_date(rng)}.",
            f"{w.capitalize()} #{rng.randint(10, 99999)} took {rng.uniform(0.1, 99):.2f} {rng.choice(['s', 'min', 'ms'])} "
            f"at {rng.randint(1, 100)}% load.",
        ]))
    return out
