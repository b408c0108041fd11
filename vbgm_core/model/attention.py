"""Causal linear attention (Katharopoulos et al. 2020), one maths, two kernels.

With the feature map phi(x) = elu(x) + 1, token i attends as

    out_i = phi(q_i) . S_i / (phi(q_i) . z_i + eps),   S_i = sum_{j<=i} phi(k_j) v_j^T,
                                                        z_i = sum_{j<=i} phi(k_j)

- Training (parallel over the sequence): chunked in plain PyTorch (exact quadratic attention
  inside a chunk, the running state S between chunks), or pytorch-fast-transformers'
  ``causal_dot_product`` kernel when ``backend="fast"``.
- Generation: :meth:`CausalLinearAttention.step` updates (S, z) for one token, O(1) per token.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelLoadError


def feature_map(x):
    """phi(x) = elu(x) + 1: positive, so the normaliser never vanishes."""
    return F.elu(x) + 1


def chunked_causal_product(q, k, v, chunk_size):
    """Numerator and normaliser of causal linear attention, chunk by chunk.

    Args:
        q, k: features phi(q), phi(k), ``[B, H, L, E]``.
        v: values ``[B, H, L, M]``.
        chunk_size: chunk length C; memory is O(L*C + L/C*E*M) instead of O(L*E*M).

    Returns:
        (numerator ``[B, H, L, M]``, normaliser ``[B, H, L]``) before the division.
    """
    B, H, L, E = q.shape
    M = v.shape[-1]
    pad = (-L) % chunk_size
    if pad:
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    n = (L + pad) // chunk_size
    q, k, v = (t.reshape(B, H, n, chunk_size, t.shape[-1]) for t in (q, k, v))
    # State entering each chunk: sum over all earlier chunks (exclusive prefix sum).
    kv = torch.einsum("bhnce,bhncm->bhnem", k, v)
    kv = torch.cumsum(kv, dim=2) - kv
    ksum = k.sum(dim=3)
    ksum = torch.cumsum(ksum, dim=2) - ksum                          # [B, H, n, E]
    # Inside a chunk: masked (causal) quadratic attention.
    scores = torch.einsum("bhnce,bhnde->bhncd", q, k)
    mask = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=q.device).tril()
    scores = scores.masked_fill(~mask, 0.0)
    num = torch.einsum("bhncd,bhndm->bhncm", scores, v) + torch.einsum("bhnce,bhnem->bhncm", q, kv)
    den = scores.sum(-1) + torch.einsum("bhnce,bhne->bhnc", q, ksum)
    return num.reshape(B, H, -1, M)[:, :, :L], den.reshape(B, H, -1)[:, :, :L]


def fast_causal_product(q, k, v):
    """Same result as :func:`chunked_causal_product` with pytorch-fast-transformers' kernel."""
    try:
        from fast_transformers.causal_product import causal_dot_product
    except ImportError:
        raise ModelLoadError("attention backend 'fast' needs pytorch-fast-transformers "
                             "(scripts/install_fast_transformers.sh, or attention: torch)") from None
    num = causal_dot_product(q.contiguous(), k.contiguous(), v.contiguous())
    den = torch.einsum("bhle,bhle->bhl", q, torch.cumsum(k, dim=2))
    return num, den


class CausalLinearAttention(nn.Module):
    """Multi-head causal linear self-attention with a parallel and a recurrent form.

    Args:
        d_model: model width.
        n_heads: heads; head width = d_model / n_heads.
        backend: "torch" or "fast" (parallel form only; the recurrent step is the same).
        chunk_size: chunk length of the plain PyTorch parallel form.
        eps: added to the normaliser.
    """

    def __init__(self, d_model, n_heads, backend="torch", chunk_size=64, eps=1e-6):
        super().__init__()
        self.n_heads = n_heads
        self.backend = backend
        self.chunk_size = chunk_size
        self.eps = eps
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def _heads(self, x):
        """[..., D] → q, k, v each [..., H, D/H], q and k through the feature map."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        q, k, v = (t.unflatten(-1, (self.n_heads, -1)) for t in (q, k, v))
        return feature_map(q), feature_map(k), v

    def forward(self, x):
        """Parallel form over a whole sequence: ``x [B, L, D]`` → ``[B, L, D]``."""
        q, k, v = (t.transpose(1, 2).float() for t in self._heads(x))     # [B, H, L, E]
        # Sums over thousands of tokens: keep them in float32 even under bf16 autocast.
        with torch.autocast(x.device.type, enabled=False):
            if self.backend == "fast":
                num, den = fast_causal_product(q, k, v)
            else:
                num, den = chunked_causal_product(q, k, v, self.chunk_size)
            y = num / (den.unsqueeze(-1) + self.eps)
        return self.out(y.transpose(1, 2).flatten(-2).to(x.dtype))

    def step(self, x, state):
        """Recurrent form for one token.

        Args:
            x: ``[B, D]``, the token's input.
            state: (S ``[B, H, E, M]``, z ``[B, H, E]``) or None at the first token; updated
                in place when given.

        Returns:
            (output ``[B, D]``, state).
        """
        q, k, v = (t.float() for t in self._heads(x))                      # [B, H, E]
        if state is None:
            state = (torch.zeros(*k.shape, v.shape[-1], device=x.device),
                     torch.zeros_like(k))
        s, z = state
        s.add_(k.unsqueeze(-1) * v.unsqueeze(-2))
        z.add_(k)
        num = torch.einsum("bhe,bhem->bhm", q, s)
        den = (q * z).sum(-1, keepdim=True)
        y = num / (den + self.eps)
        return self.out(y.flatten(-2).to(x.dtype)), state
