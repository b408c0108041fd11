"""The Controllable Music Transformer (METHOD.md §3).

A token's 7 attribute embeddings are concatenated and projected to d_model, then the
beat-based sinusoidal encoding of its beat and the embedding of its beat-timing bin are added.
Two start tokens carry the conditioning: a genre embedding and an instrument-set embedding
(sum of one learned vector per instrument present); with ``condition_every_token`` a second pair
of embeddings (zero at initialisation) is also added to every token's input, so the conditioning
does not fade over long contexts. A causal linear-attention transformer
follows; the head predicts the type first, then the six other attributes from
hidden ⊕ embedding(type).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import CausalLinearAttention
from .config import ATTRIBUTES, N_INSTRUMENTS, TYPE_ATTRIBUTES, ModelConfig


def beat_positional_encoding(beat_index, d_model):
    """Sinusoidal encoding of the beat, shared by all tokens of a beat; any beat count works.

    Args:
        beat_index: integer tensor of any shape ``[...]``.
        d_model: encoding width (even).

    Returns:
        float tensor ``[..., d_model]``: BPE(b, 2n) = sin(b / 10000^(2n/d)), BPE(b, 2n+1) = cos(.).
    """
    freqs = torch.exp(torch.arange(0, d_model, 2, device=beat_index.device, dtype=torch.float32)
                      * (-math.log(10000.0) / d_model))
    angles = beat_index.float().unsqueeze(-1) * freqs                      # [..., d/2]
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)


class Block(nn.Module):
    """Pre-norm transformer layer: causal linear attention, then a feed-forward network."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalLinearAttention(cfg.d_model, cfg.n_heads, cfg.attention,
                                          cfg.chunk_size, cfg.eps)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.ff = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Dropout(cfg.dropout),
                                nn.Linear(cfg.d_ff, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x):                                                   # [B, L, D]
        x = x + self.drop(self.attn(self.norm1(x)))
        return x + self.drop(self.ff(self.norm2(x)))

    def step(self, x, state):                                               # [B, D]
        y, state = self.attn.step(self.norm1(x), state)
        x = x + y
        return x + self.ff(self.norm2(x)), state


@dataclass
class GenerationState:
    """Recurrent state of a generation: ``hidden [B, D]`` predicts the next token."""

    hidden: torch.Tensor | None
    layers: list          # per layer (S [B, H, E, M], z [B, H, E])
    n_tokens: int = 0     # tokens consumed, start tokens included
    condition: torch.Tensor | None = None   # [B, D] added to every token (condition_every_token)


class CMT(nn.Module):
    """Controllable Music Transformer.

    Args:
        cfg: the model's shape (:class:`ModelConfig`).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        # One embedding per attribute, in column order (a ModuleDict cannot hold a key "type").
        self.embeddings = nn.ModuleList(
            nn.Embedding(v, cfg.emb_sizes[a]) for a, v in zip(ATTRIBUTES, cfg.vocab_sizes))
        self.in_proj = nn.Linear(sum(cfg.emb_sizes.values()), d)
        self.timing = nn.Embedding(cfg.n_timing_bins, d)
        self.genre = nn.Embedding(cfg.n_genres, d)
        self.instruments = nn.Linear(N_INSTRUMENTS, d)
        if cfg.condition_every_token:
            # Zero at first: a model trained without them (--init-from) starts out unchanged.
            self.token_genre = nn.Embedding(cfg.n_genres, d)
            self.token_instruments = nn.Linear(N_INSTRUMENTS, d, bias=False)
            nn.init.zeros_(self.token_genre.weight)
            nn.init.zeros_(self.token_instruments.weight)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)
        self.type_head = nn.Linear(d, cfg.vocab_sizes[0])
        self.type_proj = nn.Linear(d + cfg.emb_sizes["type"], d)
        self.heads = nn.ModuleDict({
            a: nn.Linear(d, v) for a, v in zip(ATTRIBUTES[1:], cfg.vocab_sizes[1:])})

    # -- inputs ------------------------------------------------------------------------------
    def embed(self, tokens, beat_index, timing):
        """Tokens ``[..., 7]`` with their beat ``[...]`` and timing bin ``[...]`` → ``[..., D]``."""
        tokens = tokens.long()
        parts = [emb(tokens[..., i]) for i, emb in enumerate(self.embeddings)]
        x = self.in_proj(torch.cat(parts, dim=-1))
        return x + beat_positional_encoding(beat_index, self.cfg.d_model) + self.timing(timing.long())

    def start_tokens(self, genre, instruments):
        """Conditioning → the two start tokens ``[B, 2, D]`` (genre, instrument set)."""
        return torch.stack((self.genre(genre.long()), self.instruments(instruments.float())), dim=1)

    def token_condition(self, genre, instruments):
        """Conditioning added to every token ``[B, D]``, or None without condition_every_token."""
        if not self.cfg.condition_every_token:
            return None
        return self.token_genre(genre.long()) + self.token_instruments(instruments.float())

    # -- outputs -----------------------------------------------------------------------------
    def type_logits(self, hidden):
        """Hidden ``[..., D]`` → type logits ``[..., 5]``."""
        return self.type_head(hidden)

    def attribute_logits(self, hidden, type_ids):
        """Hidden ``[..., D]`` and the chosen (or target) type ``[...]`` → the six others."""
        h = self.type_proj(torch.cat((hidden, self.embeddings[0](type_ids.long())), dim=-1))
        return {a: head(h) for a, head in self.heads.items()}

    # -- training ----------------------------------------------------------------------------
    def forward(self, tokens, beat_index, timing, genre, instruments):
        """Teacher-forced logits for every position.

        Args:
            tokens: ``[B, L, 7]`` integer tokens (0 = pad).
            beat_index: ``[B, L]`` beat of each token.
            timing: ``[B, L]`` beat-timing bin of each token (0..100).
            genre: ``[B]`` genre index.
            instruments: ``[B, 5]`` instrument mask (0/1).

        Returns:
            dict attribute → logits ``[B, L, vocab]``; position i predicts token i (the start
            tokens are prepended, so the input is the start tokens and tokens 0..L-2).
        """
        x = self.embed(tokens[:, :-1], beat_index[:, :-1], timing[:, :-1])   # [B, L-1, D]
        condition = self.token_condition(genre, instruments)
        if condition is not None:
            x = x + condition.unsqueeze(1)
        x = self.drop(torch.cat((self.start_tokens(genre, instruments), x), dim=1))
        for block in self.blocks:
            x = block(x)
        h = self.norm(x[:, 1:])                                               # [B, L, D]
        return {"type": self.type_logits(h), **self.attribute_logits(h, tokens[..., 0])}

    # -- generation --------------------------------------------------------------------------
    def _advance(self, state, x):
        for i, block in enumerate(self.blocks):
            x, state.layers[i] = block.step(x, state.layers[i])
        state.hidden = self.norm(x)
        state.n_tokens += 1
        return state

    @torch.no_grad()
    def start(self, genre, instruments):
        """Begin generation: run the two start tokens.

        Args:
            genre: ``[B]`` genre index.
            instruments: ``[B, 5]`` instrument mask.

        Returns:
            GenerationState whose ``hidden`` predicts the first token.
        """
        if genre.device.type == "cpu":
            # elu+1 features drive the recurrent state into denormals: 100x slower without this.
            torch.set_flush_denormal(True)
        starts = self.start_tokens(genre, instruments)
        state = GenerationState(hidden=None, layers=[None] * len(self.blocks),
                                condition=self.token_condition(genre, instruments))
        for i in range(2):
            state = self._advance(state, starts[:, i])
        return state

    @torch.no_grad()
    def step(self, state, token, beat_index, timing):
        """Append one token, O(1) in the length so far.

        Args:
            state: from :meth:`start` or a previous step; updated in place.
            token: ``[B, 7]`` the token just chosen.
            beat_index: ``[B]`` its beat.
            timing: ``[B]`` its beat-timing bin.

        Returns:
            the same state, ``hidden`` now predicting the following token.
        """
        x = self.embed(token, beat_index, timing)
        if state.condition is not None:
            x = x + state.condition
        return self._advance(state, x)


def set_cpu_generation_threads(threads=1):
    """Thread setting measured best for CPU generation (benchmarks/bench_model.py): one thread.

    Per-token work in generation is a few small matrix-vector products, too small to share
    between threads; flush-to-zero of denormals is set by :meth:`CMT.start`.
    """
    torch.set_num_threads(threads)


def masked_losses(logits, tokens):
    """Per-attribute cross entropy over the positions where the target uses that attribute.

    Args:
        logits: from :meth:`CMT.forward`.
        tokens: the targets ``[B, L, 7]`` (0 = pad).

    Returns:
        dict attribute → scalar mean loss (0 when no position counts) and "count" of each.
    """
    types = tokens[..., 0].long()
    losses, counts = {}, {}
    for i, a in enumerate(ATTRIBUTES):
        uses = torch.zeros_like(types, dtype=torch.bool)
        for t, attrs in TYPE_ATTRIBUTES.items():
            if a in attrs:
                uses |= types == t
        target = tokens[..., i].long().masked_fill(~uses, -100)
        n = uses.sum()
        loss = F.cross_entropy(logits[a].flatten(0, -2).float(), target.flatten(),
                               ignore_index=-100, reduction="sum")
        losses[a] = loss / n.clamp(min=1)
        counts[a] = n
    return losses, counts
