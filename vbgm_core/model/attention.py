"""Causal linear attention (Katharopoulos et al. 2020), one maths, two kernels.

With the feature map phi(x) = elu(x) + 1, token i attends as

    out_i = phi(q_i) . S_i / (phi(q_i) . z_i + eps),   S_i = sum_{j<=i} phi(k_j) v_j^T,
                                                        z_i = sum_{j<=i} phi(k_j)

- Training (parallel over the sequence): chunked in plain PyTorch (exact quadratic attention
  inside a chunk, the running state S between chunks), or pytorch-fast-transformers'
  ``causal_dot_product`` kernel when ``backend="fast"``.
- Generation: :meth:`CausalLinearAttention.step` updates (S, z) for one token, O(1) per token
  (the reference); :func:`fused_step` is the same maths in fewer, larger ops, on the weights
  of :meth:`CausalLinearAttention.fused_step_weights` (derived, never saved), used by
  ``CMT.start``/``CMT.step``.
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


class FusedStepState:
    """Recurrent state of one layer for :func:`fused_step`, with the step's buffers.

    ``s [B, H, E, M+1]`` holds S with the normaliser z as its last column. The buffers and
    their views are made once per piece, so a step allocates nothing and reshapes nothing.
    ``y [B, D+1]`` receives the heads' outputs; its last column stays 1, the row of the output
    projection's bias in :meth:`CausalLinearAttention.fused_step_weights`.
    """

    def __init__(self, batch, n_heads, d_model, device=None):
        H, E = n_heads, d_model // n_heads
        self.s = torch.zeros(batch, H, E, E + 1, device=device)
        self.qkv = torch.empty(batch, 2 * d_model + H * (E + 1), device=device)
        self.qk = self.qkv[:, :2 * d_model]
        self.q = self.qkv[:, :d_model].view(batch, H, 1, E)
        self.k = self.qkv[:, d_model:2 * d_model].view(batch, H, E, 1)
        self.v = self.qkv[:, 2 * d_model:].view(batch, H, 1, E + 1)
        self.o = torch.empty(batch, H, 1, E + 1, device=device)
        self.num, self.den = self.o[..., :E], self.o[..., E:]
        self.y = torch.ones(batch, d_model + 1, device=device)
        self.y_heads = self.y[:, :d_model].view(batch, H, 1, E)


def fused_step(x, weights, st):
    """Recurrent step of causal linear attention (the maths of
    :meth:`CausalLinearAttention.step` in 7 tensor ops instead of ~25).

    Args:
        x: ``[B, D]``, the token's (normalised) input.
        weights: from :meth:`CausalLinearAttention.fused_step_weights`.
        st: the layer's :class:`FusedStepState`, updated in place.

    Returns:
        ``st.y [B, D+1]``: the heads' outputs and a 1, for ``x.addmm_(st.y, w_out)``.
    """
    w_qkv, b_qkv, _, eps = weights
    torch.addmm(b_qkv, x, w_qkv, out=st.qkv)        # q, k, then per head v and a 1
    F.elu_(st.qk)
    st.qk.add_(1.0)                                 # phi(q), phi(k)
    st.s.addcmul_(st.k, st.v)                       # S += phi(k) [v, 1]^T; last column: z
    torch.matmul(st.q, st.s, out=st.o)              # [phi(q).S, phi(q).z]
    torch.div(st.num, st.den.add_(eps), out=st.y_heads)
    return st.y


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
        """[..., D] → q, k, v each [..., H, D/H], q and k through the feature map, in float32.

        Under bf16 autocast the projection is bf16, but elu(x) + 1 must be computed in float32:
        in bf16, -1 + e^x + 1 keeps steps of 2^-8, so a feature e^x below ~0.01 loses its
        precision (e^-5 = 0.0067 becomes 0.0078) and one below 0.002 becomes 0. That cost the
        fp32-trained bundled model +1.0 nats of validation loss under bf16 (issue 24); with the
        feature map in float32, +0.0002."""
        h = self.qkv(x)
        h = h.float() if h.dtype in (torch.bfloat16, torch.float16) else h
        q, k, v = h.chunk(3, dim=-1)
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

    def fused_step_weights(self):
        """The weights rearranged for :func:`fused_step` (a derived copy: training never
        sees it).

        Returns:
            (w_qkv ``[D, 2D + H(M+1)]``, b_qkv, w_out ``[D+1, D]``, eps): the q, k, v projection
            transposed for ``addmm``, q and k as in ``qkv``, then for each head its v rows and
            a row of zeros with bias 1, whose output (exactly 1) makes the state's last column
            accumulate the normaliser z; the output projection transposed, its bias as the last
            row.
        """
        w, b = self.qkv.weight.detach(), self.qkv.bias.detach()
        D = w.shape[1]
        H, M = self.n_heads, D // self.n_heads
        wv = torch.cat((w[2 * D:].reshape(H, M, D), w.new_zeros(H, 1, D)), 1).reshape(-1, D)
        bv = torch.cat((b[2 * D:].reshape(H, M), b.new_ones(H, 1)), 1).reshape(-1)
        w_out = torch.cat((self.out.weight.detach().t(), self.out.bias.detach()[None]))
        return (torch.cat((w[:2 * D], wv)).t().contiguous(), torch.cat((b[:2 * D], bv)),
                w_out.contiguous(), self.eps)

    def step(self, x, state):
        """Recurrent form for one token (the reference; generation runs :func:`fused_step`).

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
