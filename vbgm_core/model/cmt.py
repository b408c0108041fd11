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

from .attention import CausalLinearAttention, FusedStepState, fused_step
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
    layers: list          # per layer (S [B, H, E, M], z [B, H, E]); fused: [B, H, E, M+1]
    n_tokens: int = 0     # tokens consumed, start tokens included
    condition: torch.Tensor | None = None   # [B, D] added to every token (condition_every_token)
    fused: "FusedWeights | None" = None     # the fused step's weights, None: the reference step
    scratch: tuple = ()   # the fused step's buffers


# Largest beat whose encoding the fused step keeps in its table (16 MiB at d 256); later beats
# are encoded per token.
MAX_CACHED_BEATS = 16384


class FusedWeights:
    """The weights rearranged for the fused recurrent step: a derived cache, never saved.

    - One embedding table holds every attribute's embedding already multiplied by its slice of
      ``in_proj`` (bias in the type rows), the timing embeddings and the beat encodings of beats
      0..n-1: a token's input is one ``embedding_bag`` sum of 9 rows.
    - Per layer: the fused q/k/v projection of :meth:`CausalLinearAttention.fused_step_weights`
      and the other weights transposed for ``addmm``.
    (The head's folds are :meth:`CMT._fused_head`'s.)

    Folds are computed in float64, then rounded to the weights' dtype once.
    ``key`` is the parameters' (address, version): a change to any weight rebuilds it.
    """

    def __init__(self, model, key):
        self.key = key
        self.d_model = model.cfg.d_model
        w_in, b_in = model.in_proj.weight.detach().double(), model.in_proj.bias.detach().double()
        tables, col = [], 0
        for emb in model.embeddings:
            e = emb.weight.detach().double()
            tables.append(e @ w_in[:, col:col + e.shape[1]].t())
            col += e.shape[1]
        tables[0] = tables[0] + b_in
        tables.append(model.timing.weight.detach().double())
        dtype = model.in_proj.weight.dtype
        self.fixed = torch.cat(tables).to(dtype)                  # attributes, then timing
        sizes = [t.shape[0] for t in tables]
        self.offsets = torch.tensor([sum(sizes[:i]) for i in range(len(sizes))] + [sum(sizes)],
                                    device=self.fixed.device)    # + beat column's base
        self.n_beats = 0
        self.table = self.fixed
        self.grow_beats(256)
        self.layers = []
        for block in model.blocks:
            ff1, ff2 = block.ff[0], block.ff[3]
            self.layers.append((
                (block.norm1.weight.detach(), block.norm1.bias.detach(), block.norm1.eps),
                block.attn.fused_step_weights(),
                (block.norm2.weight.detach(), block.norm2.bias.detach(), block.norm2.eps),
                ff1.bias.detach(), ff1.weight.detach().t().contiguous(),
                ff2.weight.detach().t().contiguous(), ff2.bias.detach()))
        self.norm = (model.norm.weight.detach(), model.norm.bias.detach(), model.norm.eps)
        self.n_heads, self.d_ff = model.cfg.n_heads, model.cfg.d_ff

    def new_state(self, batch, device, condition):
        """Layer states and buffers for a piece of ``batch`` rows."""
        layers = [FusedStepState(batch, self.n_heads, self.d_model, device) for _ in self.layers]
        state = GenerationState(None, layers, condition=condition, fused=self)
        state.scratch = (torch.empty(batch, self.d_ff, device=device),
                         torch.arange(0, 9 * batch, 9, device=device))
        return state

    def grow_beats(self, n):
        """Make the table hold the encodings of beats 0..n-1 (capacity doubles)."""
        n = min(max(n, 2 * self.n_beats), MAX_CACHED_BEATS)
        if n <= self.n_beats:
            return
        bpe = beat_positional_encoding(torch.arange(n, device=self.fixed.device), self.d_model)
        self.table = torch.cat((self.fixed, bpe.to(self.fixed.dtype)))
        self.n_beats = n

    def embed(self, state, token, beat_index, timing):
        """Like :meth:`CMT.embed` plus the state's per-token condition, for ``token [B, 7]``.
        Token values are not range-checked (``nn.Embedding`` would raise): the sampler's are
        valid by construction."""
        beat_index = beat_index.long()
        low, top = (int(v) for v in torch.aminmax(beat_index))
        if top >= self.n_beats:
            self.grow_beats(top + 1)
        if 0 <= low and top < self.n_beats:
            idx = torch.column_stack((token, timing, beat_index)).long().add_(self.offsets)
            x = torch.embedding_bag(self.table, idx.view(-1), state.scratch[1], False, 0)[0]
        else:   # beyond the cached beats: encode them here
            idx = torch.column_stack((token, timing)).long().add_(self.offsets[:-1])
            x = torch.embedding(self.table, idx).sum(1)
            x.add_(beat_positional_encoding(beat_index, self.d_model).to(x.dtype))
        return x if state.condition is None else x.add_(state.condition)

    def advance(self, state, x):
        """The blocks and the final norm for one token ``x [B, D]`` (overwritten); ``state``
        updated in place."""
        d = (self.d_model,)
        f = state.scratch[0]
        with torch.inference_mode():
            for st, (norm1, attn, norm2, b1, w1, w2, b2) in zip(state.layers, self.layers):
                x.addmm_(fused_step(torch.layer_norm(x, d, *norm1), attn, st), attn[2])
                torch.addmm(b1, torch.layer_norm(x, d, *norm2), w1, out=f)
                x.addmm_(F.gelu(f), w2).add_(b2)
        # Outside inference mode: ``hidden`` is an ordinary tensor, usable with autograd on.
        state.hidden = torch.layer_norm(x, d, *self.norm)
        state.n_tokens += 1
        return state


class CMT(nn.Module):
    """Controllable Music Transformer.

    Args:
        cfg: the model's shape (:class:`ModelConfig`).
    """

    # Generation runs the fused step (:class:`FusedWeights`); False: the reference step, kept
    # for tests and benchmarks (set on an instance or the class).
    fused_generation = True

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
        """Hidden ``[..., D]`` and the chosen (or target) type ``[...]`` → the six others.

        In generation (hidden ``[B, D]``, no gradient) the folded head of :meth:`_fused_head`
        computes the same logits with 3 tensor ops instead of ~14."""
        if hidden.dim() == 2 and not torch.is_grad_enabled():
            head = self._fused_head()
            if head is not None:
                w_h, types, w, b, names, sizes = head
                h = torch.addmm(F.embedding(type_ids.long(), types), hidden, w_h)
                return dict(zip(names, torch.addmm(b, h, w).split(sizes, dim=1)))
        h = self.type_proj(torch.cat((hidden, self.embeddings[0](type_ids.long())), dim=-1))
        return {a: head(h) for a, head in self.heads.items()}

    def _fused_head(self):
        """``type_proj`` and the six heads folded for one-token logits (a derived cache, rebuilt
        when one of their weights changes): hidden part of ``type_proj`` (transposed), per-type
        table (type embedding times its part, plus the bias), heads as one matrix."""
        if not self.fused_generation or self.type_proj.weight.dtype != torch.float32:
            return None
        params = [self.type_proj.weight, self.type_proj.bias, self.embeddings[0].weight]
        for head in self.heads.values():     # cheaper than .parameters(), called per token
            params += (head.weight, head.bias)
        key = tuple((p.data_ptr(), p._version) for p in params)
        cached = self.__dict__.get("_fused_head_cache")
        if cached is None or cached[0] != key:
            d = self.cfg.d_model
            w = self.type_proj.weight.detach()
            types = (self.embeddings[0].weight.detach().double() @ w[:, d:].double().t()
                     + self.type_proj.bias.detach().double()).to(w.dtype)
            heads = list(self.heads.values())
            head = (w[:, :d].t().contiguous(), types,
                    torch.cat([h.weight.detach() for h in heads]).t().contiguous(),
                    torch.cat([h.bias.detach() for h in heads]), list(self.heads),
                    [h.out_features for h in heads])
            cached = (key, head)
            self.__dict__["_fused_head_cache"] = cached
        return cached[1]

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

    def _fused_weights(self):
        """The fused step's weights, rebuilt when any parameter changed (moved, loaded, trained,
        edited in place), or None where the reference step runs (``fused_generation`` off, or
        weights other than float32)."""
        if not self.fused_generation or self.in_proj.weight.dtype != torch.float32:
            return None
        key = tuple((p.data_ptr(), p._version) for p in self.parameters())
        fused = self.__dict__.get("_fused")
        if fused is None or fused.key != key:
            fused = FusedWeights(self, key)
            self.__dict__["_fused"] = fused      # a plain attribute: not in the state_dict
        return fused

    def start(self, genre, instruments):
        """Begin generation: run the two start tokens.

        Args:
            genre: ``[B]`` genre index.
            instruments: ``[B, 5]`` instrument mask.

        Returns:
            GenerationState whose ``hidden`` predicts the first token. With
            ``fused_generation`` (the default) the state runs the fused step on the weights as
            they are now, until the piece ends; otherwise the reference step (``Block.step``).
        """
        with torch.no_grad():
            if genre.device.type == "cpu":
                # elu+1 features drive the recurrent state into denormals: 100x slower without.
                torch.set_flush_denormal(True)
            starts = self.start_tokens(genre, instruments)
            condition = self.token_condition(genre, instruments)
            fused = self._fused_weights()
            if fused is not None:
                state = fused.new_state(starts.shape[0], starts.device, condition)
                for i in range(2):
                    fused.advance(state, starts[:, i].clone())
                return state
            state = GenerationState(hidden=None, layers=[None] * len(self.blocks),
                                    condition=condition)
            for i in range(2):
                state = self._advance(state, starts[:, i])
            return state

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
        with torch.no_grad():
            if state.fused is not None:
                fused = state.fused
                return fused.advance(state, fused.embed(state, token, beat_index, timing))
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
