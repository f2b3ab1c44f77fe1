"""Train the default Attend model (CPU, PyTorch 1.13). Resumable: re-running continues from runs/<name>/ckpt.pt.

Usage: nohup /usr/bin/python3 engine/train/train.py --name main --total-steps 3000 --max-minutes 68 > engine/train/runs/main.out 2>&1 &
"""
import argparse, json, math, os, random, sys, time

import torch
import torch.nn.functional as F

import bpe
import data as D
from model import Cfg, Memory, Model

HERE = os.path.dirname(os.path.abspath(__file__))


def pad_batch(items, pad_id):
    """(ids, answer weights, doc-text LM weights), padded, for a list of (ids, loss weights, prompt length)."""
    T = max(len(x) for x, _, _ in items)
    ids = torch.full((len(items), T), pad_id, dtype=torch.long)
    wa = torch.zeros(len(items), T)  # answer weights
    wd = torch.zeros(len(items), T)  # doc-text LM weights
    for i, (x, w, npr) in enumerate(items):
        ids[i, :len(x)] = torch.tensor(x)
        wt = torch.tensor(w)
        a = (wt == 1.0).float()
        a[:npr] = 0
        wa[i, :len(x)] = a  # answers (incl. extra turns' answers), not the turns' question tokens
        d = wt.clone()
        d[npr:] = 0
        wd[i, :len(x)] = (d > 0).float()
    return ids, wa, wd


def draw(sample, gen, enc, rng, L, tok_budget):
    """As many examples of ~L tokens from `sample` as fit the token budget."""
    B = max(1, int(tok_budget // (L * 1.15 + 8)))
    seqs = []
    while len(seqs) < B:
        r = sample(gen, enc, rng, L)
        if r is not None:
            seqs.append(r)
    return seqs


def build_batch(gen, enc, rng, L, tok_budget, pad_id):
    seqs = draw(D.sample_example, gen, enc, rng, L, tok_budget)
    ids, wa, wd = pad_batch([(x, w, npr) for _, x, w, npr in seqs], pad_id)
    return ids, wa, wd, [s[0]["task"] for s in seqs]


def build_superposed_batch(gen, enc, rng, L, tok_budget, pad_id):
    """A batch in block memory's layout (data.sample_superposed, model.Memory); weights as build_batch's."""
    seqs = draw(D.sample_superposed, gen, enc, rng, L, tok_budget)
    ids, wa, wd = pad_batch([(x, w, npr) for _, x, w, npr, _, _ in seqs], pad_id)
    span = D.MEM_TAIL + D.MEM_BLOCK + D.MEM_HEAD
    memory = Memory([s[4] for s in seqs], [s[5] for s in seqs], span)
    return ids, wa, wd, [s[0]["task"] for s in seqs], memory


def losses(model, ids, wa, wd, memory=None):
    logits = model(ids[:, :-1], memory)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="none").view(ids.shape[0], -1)
    a, d = wa[:, 1:], wd[:, 1:]
    la = (ce * a).sum() / a.sum().clamp(min=1)
    ld = (ce * d).sum() / d.sum().clamp(min=1)
    return la, ld, logits


def make_val(tok, n_per_task=10, seed=99, split="eval", lo=64, hi=480):
    """Held-out validation examples (EVAL corpus filler, lengths within the window)."""
    c = D.Corpus(split)
    gen, enc = D.Gen(c), D.Encoder(tok)
    rng = random.Random(seed)
    out = {t: [] for t in D.TASKS}
    while min(len(v) for v in out.values()) < n_per_task:
        L = rng.randint(lo, hi)
        r = D.sample_example(gen, enc, rng, L, max_len=500)
        if r is None:
            continue
        ex, ids, w, npr = r
        if len(out[ex["task"]]) < n_per_task:
            out[ex["task"]].append((ids, npr, ex))
    return out


@torch.no_grad()
def exact_match(model, val):
    """Teacher-forced check that argmax == target at every answer position incl. final <|end|>.
    This is exactly equivalent to greedy decoding producing the answer token sequence and then stopping."""
    model.eval()
    res = {}
    for task, items in val.items():
        ok = 0
        for ids, npr, ex in items:
            x = torch.tensor([ids])
            logits = model(x[:, :-1])[0]
            pred = logits[npr - 1:].argmax(-1)
            ok += int(torch.equal(pred, x[0, npr:]))
        res[task] = ok / max(1, len(items))
    model.train()
    res["all"] = sum(res[t] for t in val) / len(val)
    return res


def lr_at(step, total, peak, warm=100, floor=0.1):
    if step < warm:
        return peak * (step + 1) / warm
    p = min(1.0, (step - warm) / max(1, total - warm))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


def target_len(rng, step, total, short_frac=0.0, lmax_start=160):
    p = step / total
    lmax = int(lmax_start + (720 - lmax_start) * min(1.0, p / 0.55))
    u = rng.random()
    if u < short_frac:
        return rng.randint(64, 200)
    if u < short_frac + 0.3 * (1 - short_frac):
        return rng.randint(max(64, lmax // 2), lmax)
    return rng.randint(64, lmax)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="main")
    ap.add_argument("--total-steps", type=int, default=3000)
    ap.add_argument("--max-minutes", type=float, default=68)
    ap.add_argument("--tok-budget", type=int, default=2048)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--doc-lm-weight", type=float, default=0.25)
    ap.add_argument("--ckpt-minutes", type=float, default=4)
    ap.add_argument("--eval-minutes", type=float, default=8)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--short-frac", type=float, default=0.0, help="fraction of batches drawn from 64-200 tokens")
    ap.add_argument("--short-from", type=int, default=0, help="apply --short-frac from this step on")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--init", default=None, help="start a new run from this checkpoint's weights (fresh optimizer)")
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--lmax-start", type=int, default=160, help="length curriculum start (720 = no curriculum)")
    ap.add_argument("--task-p", default=None, help="comma-separated task probabilities, in data.TASKS order")
    D.add_data_args(ap)
    ap.add_argument("--extra-turns-within", type=int, default=0,
                    help="add more questions about the same documents as chat turns while the example fits this many tokens")
    ap.add_argument("--superpose", type=float, default=0.0,
                    help="share of steps whose batch is in block memory's layout (a far block brought back next to the "
                         "window, data.sample_superposed); 0 reproduces the earlier runs' batches")
    ap.add_argument("--time-schedule", action="store_true",
                    help="LR/curriculum progress = max(step/total, elapsed/max-minutes), so the cosine ends on time")
    args = ap.parse_args()
    D.apply_data_args(args)
    if args.task_p:
        D.TASK_P[:] = [float(x) for x in args.task_p.split(",")]
        assert len(D.TASK_P) == len(D.TASKS)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    out_dir = os.path.join(HERE, "runs", args.name)
    os.makedirs(out_dir, exist_ok=True)
    ck_path = os.path.join(out_dir, "ckpt.pt")
    logf = open(os.path.join(out_dir, "log.jsonl"), "a")

    def log(**kw):
        kw["time"] = time.strftime("%H:%M:%S")
        print(json.dumps(kw), flush=True)
        logf.write(json.dumps(kw) + "\n")
        logf.flush()

    tok = bpe.load()
    cfg = Cfg(vocab_size=tok.vocab_size)
    model = Model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.05)
    step, elapsed, tokens = 0, 0.0, 0
    if os.path.exists(ck_path):
        ck = torch.load(ck_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, elapsed, tokens = ck["step"], ck["elapsed"], ck["tokens"]
        log(event="resume", step=step, elapsed_min=round(elapsed / 60, 2))
    elif args.init:
        model.load_state_dict(torch.load(args.init)["model"])
        log(event="start", init=args.init, params=model.n_params(), cfg=cfg.to_dict(), args=vars(args))
    else:
        log(event="start", params=model.n_params(), cfg=cfg.to_dict(), args=vars(args))
    with open(os.path.join(out_dir, "cfg.json"), "w") as f:
        json.dump(cfg.to_dict(), f)

    corpus = D.Corpus("train")
    gen, enc = D.Gen(corpus), D.Encoder(tok, doc_lm_weight=args.doc_lm_weight, extra_turns_within=args.extra_turns_within)
    val = make_val(tok, n_per_task=10)
    pad = tok.special["<|endoftext|>"]

    def save():
        tmp = ck_path + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed,
                    "tokens": tokens, "cfg": cfg.to_dict()}, tmp)
        os.replace(tmp, ck_path)

    t_start = time.time() - elapsed
    last_ck = last_ev = time.time()
    acc_la = acc_ld = acc_n = 0.0
    acc_mem = acc_mem_n = 0.0
    model.train()
    while step < args.total_steps and (time.time() - t_start) < args.max_minutes * 60:
        rng = random.Random(args.seed * 1_000_003 + step)
        prog = step
        if args.time_schedule:
            prog = max(step, int(args.total_steps * (time.time() - t_start) / (args.max_minutes * 60)))
        # Superposed steps draw from their own stream, so --superpose 0 leaves every other batch as it was.
        srng = random.Random(args.seed * 7_919_993 + step) if args.superpose > 0 else None
        memory = None
        if srng is not None and srng.random() < args.superpose:
            L = srng.randint(560, 900)
            ids, wa, wd, tasks, memory = build_superposed_batch(gen, enc, srng, L, 2 * args.tok_budget, pad)
        else:
            L = target_len(rng, prog, args.total_steps, args.short_frac if step >= args.short_from else 0.0, args.lmax_start)
            ids, wa, wd, tasks = build_batch(gen, enc, rng, L, args.tok_budget, pad)
        for g in opt.param_groups:
            g["lr"] = lr_at(prog if step >= args.warmup else step, args.total_steps, args.lr, warm=args.warmup)
        la, ld, _ = losses(model, ids, wa, wd, memory)
        loss = la + args.doc_lm_weight * ld
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens += int(ids.numel())
        acc_la += float(la); acc_ld += float(ld); acc_n += 1
        if memory is not None:
            acc_mem += float(la); acc_mem_n += 1
        elapsed = time.time() - t_start
        if step % 25 == 0:
            log(step=step, ans_loss=round(acc_la / acc_n, 4), doc_loss=round(acc_ld / acc_n, 4), lr=round(opt.param_groups[0]["lr"], 6),
                gnorm=round(float(gn), 3), L=L, B=ids.shape[0], tokens=tokens, min=round(elapsed / 60, 2),
                **({"mem_ans_loss": round(acc_mem / acc_mem_n, 4)} if acc_mem_n else {}))
            acc_la = acc_ld = acc_n = 0.0
            acc_mem = acc_mem_n = 0.0
        if time.time() - last_ev > args.eval_minutes * 60:
            em = exact_match(model, val)
            log(step=step, val_em={k: round(v, 3) for k, v in em.items()})
            last_ev = time.time()
        if time.time() - last_ck > args.ckpt_minutes * 60:
            save()
            last_ck = time.time()
    save()
    em = exact_match(model, val)
    log(event="done", step=step, tokens=tokens, min=round(elapsed / 60, 2), val_em={k: round(v, 3) for k, v in em.items()})


if __name__ == "__main__":
    main()
