"""Mistral-style decoder (Llama + sliding window + attention sinks), written out explicitly for PyTorch 1.13.

Attention rule (identical to the engine's AttentionSpec): query q sees key k iff
    k <= q and (q - k < window or k < sinks)
RoPE: HF Llama rotate_half convention, theta 10000, absolute positions 0..n-1. RMSNorm in fp32, eps 1e-5.
"""
import math
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class Cfg:
    vocab_size: int = 2048
    hidden_size: int = 256
    n_layers: int = 4
    n_heads: int = 8
    n_kv_heads: int = 4
    head_dim: int = 32
    intermediate_size: int = 512
    rope_theta: float = 10000.0
    rms_eps: float = 1e-5
    window: int = 512
    sinks: int = 4
    max_pos: int = 32768

    def to_dict(self):
        return asdict(self)


def attention_mask(n, window, sinks, device=None):
    q = torch.arange(n, device=device)[:, None]
    k = torch.arange(n, device=device)[None, :]
    return (k <= q) & (((q - k) < window) | (k < sinks))


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x32 = x.float() if dt != torch.float64 else x
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.to(y.dtype)).to(dt)


def rope_cos_sin(n, head_dim, theta, dtype, device=None):
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim))
    t = torch.arange(n, dtype=torch.float64, device=device)
    fr = torch.outer(t, inv)
    emb = torch.cat([fr, fr], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


class Block(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.c = c
        d, hd = c.hidden_size, c.head_dim
        self.q_proj = nn.Linear(d, c.n_heads * hd, bias=False)
        self.k_proj = nn.Linear(d, c.n_kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(d, c.n_kv_heads * hd, bias=False)
        self.o_proj = nn.Linear(c.n_heads * hd, d, bias=False)
        self.gate_proj = nn.Linear(d, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(d, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, d, bias=False)
        self.input_layernorm = RMSNorm(d, c.rms_eps)
        self.post_attention_layernorm = RMSNorm(d, c.rms_eps)

    def forward(self, x, cos, sin, mask_add, mem=None):
        c = self.c
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, c.n_heads, c.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(B, T, c.n_kv_heads, c.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(B, T, c.n_kv_heads, c.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if mem is not None:
            # Block memory's relocated copy of tokens [start, start + n) per example: the same keys (computed in their
            # own context) re-rotated by `shift` positions, and the same values, as extra key slots (Memory below).
            idx, cos_d, sin_d = mem
            g = idx[:, None, :, None].expand(B, c.n_kv_heads, idx.shape[1], c.head_dim)
            km, vm = k.gather(2, g), v.gather(2, g)
            k = torch.cat([k, km * cos_d + rotate_half(km) * sin_d], dim=2)
            v = torch.cat([v, vm], dim=2)
        rep = c.n_heads // c.n_kv_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(c.head_dim)) + mask_add
        att = torch.softmax(att, dim=-1)
        o = (att @ v).transpose(1, 2).reshape(B, T, c.n_heads * c.head_dim)
        x = x + self.o_proj(o)
        h = self.post_attention_layernorm(x)
        x = x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))
        return x


class Memory:
    """Block memory's layout for a batch (train.py --superpose): example b's tokens [start, start + n) are hidden from
    every other token and come back, for the rows from q_start on (the question and answers), as n extra key slots:
    the same keys re-rotated to the positions q_start - n .. q_start - 1 and the same values, always visible. That is
    what the engine does with a retrieved far block (prefill.ts, memory.ts relocatedBatch)."""

    def __init__(self, starts, q_starts, n):
        self.starts, self.q_starts, self.n = starts, q_starts, n
        self.idx = torch.tensor(starts)[:, None] + torch.arange(n)[None, :]  # (B, n)
        self.shift = torch.tensor([q - n - s for s, q in zip(starts, q_starts)])

    def visibility(self, base):
        """(B, T, T + n) boolean: the engine's rule `base` minus the hidden tokens, plus the relocated copy."""
        T = base.shape[0]
        vis = torch.zeros(len(self.starts), T, T + self.n, dtype=torch.bool)
        vis[:, :, :T] = base
        rows = torch.arange(T)
        for b, (s, q) in enumerate(zip(self.starts, self.q_starts)):
            inside = (rows >= s) & (rows < s + self.n)
            vis[b, ~inside, s:s + self.n] = False
            vis[b, q:, T:] = True
        return vis


class Model(nn.Module):
    def __init__(self, c: Cfg):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList([Block(c) for _ in range(c.n_layers)])
        self.norm = RMSNorm(c.hidden_size, c.rms_eps)
        self.apply(self._init)
        for l in self.layers:  # scaled residual projections
            nn.init.normal_(l.o_proj.weight, std=0.02 / math.sqrt(2 * c.n_layers))
            nn.init.normal_(l.down_proj.weight, std=0.02 / math.sqrt(2 * c.n_layers))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids, memory=None):
        B, T = ids.shape
        dt = self.embed_tokens.weight.dtype
        x = self.embed_tokens(ids)
        cos, sin = rope_cos_sin(T, self.c.head_dim, self.c.rope_theta, dt, ids.device)
        m = attention_mask(T, self.c.window, self.c.sinks, ids.device)
        mem = None
        if memory is None:
            mask_add = torch.zeros(T, T, dtype=dt, device=ids.device).masked_fill(~m, float("-inf"))
        else:
            vis, idx, shift = memory.visibility(m), memory.idx, memory.shift
            mask_add = torch.zeros(vis.shape, dtype=dt, device=ids.device).masked_fill(~vis, float("-inf"))[:, None]
            inv = 1.0 / (self.c.rope_theta ** (torch.arange(0, self.c.head_dim, 2, dtype=torch.float64) / self.c.head_dim))
            ang = shift.to(torch.float64)[:, None] * inv[None, :]
            ang = torch.cat([ang, ang], dim=-1)[:, None, None, :]  # (B, 1, 1, head_dim)
            mem = (idx, ang.cos().to(dt), ang.sin().to(dt))
        for l in self.layers:
            x = l(x, cos, sin, mask_add, mem)
        x = self.norm(x)
        return x @ self.embed_tokens.weight.t()  # tied lm head

    def n_params(self):
        return sum(p.numel() for p in self.parameters())


@torch.no_grad()
def greedy(model, ids, eos, max_new=24):
    """Greedy decode (full recompute each step; sequences are short)."""
    out = []
    cur = list(ids)
    for _ in range(max_new):
        logits = model(torch.tensor([cur]))[0, -1]
        t = int(logits.argmax())
        if t == eos:
            break
        out.append(t)
        cur.append(t)
    return out
