"""The attention backend of a student: xformers, PyTorch SDPA or the plain matmul-softmax reference.

The backend is switched on timm's own `Attention` modules by swapping their class for a subclass
with another `forward`, so parameter names (and the timm-loadable checkpoint) stay unchanged.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Attention
from torch import nn

from .errors import StudentError

BACKENDS = ("auto", "xformers", "sdpa", "naive")


@functools.cache
def xformers_available(device: str = "cuda") -> bool:
    """Whether xformers' memory-efficient attention runs on `device` (the process's own GPU, so that the ranks of a
    multi-GPU job do not each open a context on GPU 0), tried once on a tiny input. Importing is not enough: a wheel
    built for another torch imports, warns, and has no kernels (xformers 0.0.35, built for torch 2.10 + CUDA 12.8,
    under torch 2.11 + CUDA 13 on an H200, 2026-12-04: every call raised NotImplementedError)."""
    try:
        import xformers.ops as xops

        q = torch.zeros(1, 1, 1, 8, device=device, dtype=torch.float16)
        xops.memory_efficient_attention(q, q, q)
    except Exception:  # not installed, no device, or no kernel for this torch and device: all mean "not usable"
        return False
    return True


def resolve_backend(backend: str, device: torch.device) -> str:
    """The backend that will actually run on `device`. `auto` is SDPA everywhere, chosen by measurement: on an H200
    (2026-12-04, docs/benchmarks.md) xformers 0.0.35 dispatched to PyTorch's own flash kernel, and a ViT-S/16 step
    took 12-43% longer with it than with SDPA in four of four comparisons; xformers runs only when asked for."""
    if backend not in BACKENDS:
        raise StudentError(f"attention backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "sdpa"
    if backend == "xformers" and not (device.type == "cuda" and xformers_available(str(device))):
        why = (f"it needs CUDA, not {device.type}" if device.type != "cuda" else
               "it is not installed (pip install '.[gpu]') or has no kernels for this torch and GPU")
        raise StudentError(f"attention backend xformers: {why}; use auto or sdpa")
    return backend


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str, dropout: float = 0.0) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v for q, k, v of shape [B, heads, N, head_dim]."""
    if backend == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
    if backend == "xformers":
        import xformers.ops as xops

        # xformers wants [B, N, heads, head_dim]
        out = xops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), p=dropout)
        return out.transpose(1, 2)
    attn = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    attn = F.dropout(attn.softmax(dim=-1), dropout)
    return attn @ v


class SwitchableAttention(Attention):
    """timm's Attention with the kernel chosen by `backend` (set by `set_attention`)."""

    backend: str = "sdpa"

    def forward(self, x: torch.Tensor, attn_mask=None, is_causal: bool = False) -> torch.Tensor:
        if attn_mask is not None or is_causal:
            return super().forward(x, attn_mask, is_causal)  # masks are not used by students; keep timm's path
        B, N, _ = x.shape
        gate = self.gate(x).sigmoid() if self.gate is not None else None
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        x = attend(q, k, v, self.backend, self.attn_drop.p if self.training else 0.0)
        x = self.norm(x.transpose(1, 2).reshape(B, N, self.attn_dim))
        if gate is not None:
            x = x * gate
        return self.proj_drop(self.proj(x))


def set_attention(model: nn.Module, backend: str, device: torch.device | str = "cpu") -> str:
    """Switch every timm Attention module of `model` to `backend`; returns the backend that runs."""
    resolved = resolve_backend(backend, torch.device(device))
    modules = [m for m in model.modules() if isinstance(m, Attention)]
    if not modules:
        raise StudentError(f"{type(model).__name__}: no timm Attention modules, so no attention backend to set")
    for m in modules:
        m.__class__ = SwitchableAttention
        m.backend = resolved
    return resolved
