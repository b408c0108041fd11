"""The CMT and its attention: parallel = recurrent, backends agree, configs, weight files."""

import copy
import os
from pathlib import Path

import pytest
import torch
from numerics import U32, assert_within, gamma, row_tolerance

import vbgm_core
from vbgm_core.errors import InputError, ModelLoadError
from vbgm_core.model import CMT, ModelConfig, load_config, masked_losses
from vbgm_core.model.attention import (
    CausalLinearAttention,
    FusedStepState,
    chunked_causal_product,
    feature_map,
    fused_step,
)
from vbgm_core.model.checkpoint import load_model, save_model

TINY = dict(n_layers=2, n_heads=2, d_model=32, d_ff=64, dropout=0.0, n_genres=4,
            emb_sizes=dict(type=4, beat=4, density=4, strength=4, instrument=4, pitch=8, duration=4))


def random_batch(cfg, B=2, L=37, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.stack([torch.randint(0, v, (B, L), generator=g) for v in cfg.vocab_sizes], -1)
    beat = torch.cumsum(torch.randint(0, 2, (B, L), generator=g), 1) + 1990  # long songs too
    timing = torch.randint(0, 101, (B, L), generator=g)
    genre = torch.randint(0, cfg.n_genres, (B,), generator=g)
    instruments = torch.randint(0, 2, (B, 5), generator=g)
    return tokens, beat, timing, genre, instruments


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    return CMT(ModelConfig(**{**TINY, **overrides})).eval()


def reference_linear_attention(q, k, v, eps=1e-6):
    """O(L^2) masked form of causal linear attention, for checking the fast forms."""
    scores = torch.einsum("bhle,bhme->bhlm", q, k).tril()
    return scores @ v / (scores.sum(-1, keepdim=True) + eps)


def linear_attention_bound(q, k, v, chunk, eps=1e-6):
    """Exact (float64) causal linear attention of the float32 features ``q, k`` (positive) and
    values ``v``, and the worst-case error bound of one float32 computation of it, in any
    summation order or chunking (tests/numerics.py).

    Output i is num_i / den_i, num_i = sum_j (q_i.k_j) v_j, den_i = sum_j q_i.k_j + eps, every
    q_i.k_j > 0. Each is a sum of at most E + Lp + 3 roundings in series (the dot product,
    then the keys: inside the chunk, the chunk states' prefix sum, the exclusive prefix as
    cumsum - own chunk, the two parts and eps; Lp = L padded to whole chunks), so its error
    is within gamma(E + Lp + 3) times its terms' magnitudes; the chunked form's state holds
    the whole chunk of i (keys past i too), so the magnitudes sum the keys to the end of i's
    chunk. The quotient adds den's relative error times |y| and a rounding.
    """
    q, k, v = (t.double() for t in (q, k, v))
    L, E = q.shape[-2:]
    padded = -(-L // chunk) * chunk
    scores = q @ k.transpose(-1, -2)                                    # [B, H, L, L], > 0
    ends = (torch.arange(L) // chunk + 1) * chunk                       # past i's chunk
    summed = scores * (torch.arange(L)[None, :] < ends[:, None])
    causal = scores.tril()
    den = causal.sum(-1, keepdim=True) + eps
    y = causal @ v / den
    g = gamma(E + padded + 3)
    bound = g * (summed @ v.abs() + y.abs() * summed.sum(-1, keepdim=True)) / den + U32 * y.abs()
    return y, bound


def model_terms(cfg, n_tokens):
    """Float32 terms summed in series from the first token to a logit of a model of config
    ``cfg`` after ``n_tokens`` tokens, for :func:`numerics.row_tolerance`: per layer the
    recurrent state (n_tokens) and the sums in series through it (q/k/v, the output
    projection and the first feed-forward layer: D terms each; the second: d_ff), then the
    head (D). The debug config after 302 tokens: 1308 terms, gamma = 7.8e-5."""
    return cfg.n_layers * (n_tokens + 3 * cfg.d_model + cfg.d_ff) + cfg.d_model


def model_tolerance(cfg, want, n_tokens):
    """Tolerance of a model's float32 output ``want`` (hidden state or logits, ``[..., N]``)
    computed two ways after ``n_tokens`` tokens: twice (two computations) the first-order
    worst-case bound gamma(model_terms) times the row's largest element (the stand-in for the
    summed terms' magnitude: LayerNorm keeps the hidden state O(1)). Measured under every
    setting of tests/test_numerics_portable.py: at most 0.06 of it (recurrent vs parallel,
    MKL_CBWR=COMPATIBLE); a 1e-3 relative change of one weight matrix exceeds it."""
    return row_tolerance(want, model_terms(cfg, n_tokens), safety=2)


@pytest.mark.parametrize("L,chunk", [(1, 4), (5, 4), (64, 16), (70, 64)])
def test_chunked_attention_equals_quadratic_reference(L, chunk):
    g = torch.Generator().manual_seed(L)
    q, k = (feature_map(torch.randn(2, 3, L, 8, generator=g)) for _ in range(2))
    v = torch.randn(2, 3, L, 5, generator=g)
    num, den = chunked_causal_product(q, k, v, chunk)
    exact, bound = linear_attention_bound(q, k, v, chunk)
    want = reference_linear_attention(q, k, v)
    assert_within(want, exact, bound, "quadratic reference vs float64")
    assert_within(num / (den.unsqueeze(-1) + 1e-6), want, 2 * bound, "chunked vs quadratic")


@pytest.mark.parametrize("chunk,every,fused", [(4, False, True), (8, False, True), (64, False, True),
                                               (8, True, True), (8, False, False), (8, True, False)])
def test_recurrent_generation_equals_parallel_forward(chunk, every, fused, one_thread):
    model = tiny_model(chunk_size=chunk, condition_every_token=every)
    model.fused_generation = fused      # the fused step (default) and the reference step
    if every:   # make the per-token conditioning matter (it starts at zero)
        with torch.no_grad():
            model.token_genre.weight.normal_()
            model.token_instruments.weight.normal_()
    tokens, beat, timing, genre, instruments = batch = random_batch(model.cfg)
    with torch.no_grad():
        out = model(*batch)
    state = model.start(genre, instruments)
    for i in range(tokens.shape[1]):
        attrs = {"type": model.type_logits(state.hidden),
                 **model.attribute_logits(state.hidden, tokens[:, i, 0])}
        for name, logits in attrs.items():
            want = out[name][:, i]
            assert_within(logits, want, model_tolerance(model.cfg, want, i + 2), f"{name} {i}")
        model.step(state, tokens[:, i], beat[:, i], timing[:, i])
    assert state.n_tokens == tokens.shape[1] + 2


def test_fast_transformers_backend_matches_torch_backend():
    try:
        import fast_transformers.causal_product  # noqa: F401
    except ImportError:
        if os.environ.get("VBGM_REQUIRE_FAST"):
            raise
        pytest.skip("pytorch-fast-transformers not installed (scripts/install_fast_transformers.sh)")
    torch_model = tiny_model(attention="torch", chunk_size=8)
    fast_model = tiny_model(attention="fast")
    fast_model.load_state_dict(torch_model.state_dict())
    batch = random_batch(torch_model.cfg, L=100)
    with torch.no_grad():
        a, b = torch_model(*batch), fast_model(*batch)
    for name in a:
        assert_within(b[name], a[name], model_tolerance(torch_model.cfg, a[name], 101), name)
    # Gradients agree too (the fast kernel has its own backward).
    torch_model.train(), fast_model.train()
    for m in (torch_model, fast_model):
        losses, _ = masked_losses(m(*batch), batch[0])
        sum(losses.values()).backward()
    # The backward pass runs the chain of sums again, and each weight's gradient then sums
    # over the batch's 2 x 101 positions.
    terms = model_terms(torch_model.cfg, 101) + 2 * 101
    for (n, p), (_, q) in zip(torch_model.named_parameters(), fast_model.named_parameters()):
        assert_within(q.grad, p.grad, row_tolerance(p.grad, terms, safety=2), n)


def debug_model(every, seed=0):
    torch.manual_seed(seed)
    cfg = load_config("debug")[0]
    model = CMT(ModelConfig(**{**cfg.__dict__, "condition_every_token": every})).eval()
    if every:   # make the per-token conditioning matter (it starts at zero)
        with torch.no_grad():
            model.token_genre.weight.normal_()
            model.token_instruments.weight.normal_()
    return model


@pytest.fixture
def one_thread():
    """Generation's thread setting (set_cpu_generation_threads): on a busy machine two threads
    make these one-token steps ~25x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_both_steps(model, B=3, L=300, first_beat=200, seed=1):
    """Feed the same random tokens to the reference and the fused step.

    Returns:
        {fused: {"hidden": [L+1, B, D], "type" and the six attributes: [L+1, B, vocab]}}, the
        hidden state and logits before every token and after the last; and the two states.
    """
    g = torch.Generator().manual_seed(seed)
    tokens = torch.stack([torch.randint(0, v, (B, L), generator=g) for v in model.cfg.vocab_sizes],
                         -1)
    beat = torch.cumsum(torch.randint(0, 2, (B, L), generator=g), 1) + first_beat
    timing = torch.randint(0, 101, (B, L), generator=g)
    genre = torch.randint(0, model.cfg.n_genres, (B,), generator=g)
    instruments = torch.randint(0, 2, (B, 5), generator=g)
    kinds = torch.cat((tokens[:, :, 0], torch.full((B, 1), 3)), 1)  # any type after the last
    out, states = {}, {}
    for fused in (False, True):
        model.fused_generation = fused
        state = states[fused] = model.start(genre, instruments)
        rows = []
        with torch.no_grad():
            for i in range(L + 1):
                if i:
                    model.step(state, tokens[:, i - 1], beat[:, i - 1], timing[:, i - 1])
                rows.append({"hidden": state.hidden, "type": model.type_logits(state.hidden),
                             **model.attribute_logits(state.hidden, kinds[:, i])})
        out[fused] = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
    model.fused_generation = True
    return out, states


@pytest.mark.parametrize("every", [False, True])
def test_fused_step_matches_the_reference_step(every, one_thread):
    """Hidden states and every attribute's logits of the fused step (folded embeddings, cached
    beat encodings, fused projections) equal the reference step's over 300 tokens, 3 rows."""
    model = debug_model(every)
    out, states = run_both_steps(model)
    assert states[False].fused is None and states[True].fused is not None
    for name, want in out[False].items():
        assert_within(out[True][name], want, model_tolerance(model.cfg, want, 302), name)
    assert states[True].n_tokens == states[False].n_tokens == 302
    assert states[True].fused.n_beats >= 512      # the beat table grew past its first 256


def test_fused_step_encodes_beats_beyond_its_table(monkeypatch, one_thread):
    import vbgm_core.model.cmt as cmt

    monkeypatch.setattr(cmt, "MAX_CACHED_BEATS", 64)     # beats 64.. are past the table
    model = debug_model(True)
    out, states = run_both_steps(model, L=40, first_beat=50)
    want = out[False]["hidden"]
    assert_within(out[True]["hidden"], want, model_tolerance(model.cfg, want, 42), "hidden")
    assert states[True].fused.n_beats == 64


def test_fused_weights_follow_the_parameters_and_stay_out_of_the_state_dict(one_thread):
    model = debug_model(False)
    keys = set(model.state_dict())
    genre, instruments = torch.tensor([1]), torch.ones(1, 5)
    before = model.start(genre, instruments).hidden
    torch.testing.assert_close(model.start(genre, instruments).hidden, before)
    with torch.no_grad():
        model.blocks[-1].ff[3].weight.mul_(2.0)          # in-place edits, as training makes
        model.heads["pitch"].weight.mul_(2.0)
    state = model.start(genre, instruments)
    model.fused_generation = False
    reference = model.start(genre, instruments)
    assert_within(state.hidden, reference.hidden,
                  model_tolerance(model.cfg, reference.hidden, 2), "hidden")
    assert not torch.allclose(state.hidden, before, atol=1e-3)
    with torch.no_grad():
        want = model.attribute_logits(reference.hidden, torch.tensor([3]))["pitch"]
        model.fused_generation = True
        got = model.attribute_logits(state.hidden, torch.tensor([3]))["pitch"]
    assert_within(got, want, model_tolerance(model.cfg, want, 2), "pitch")
    assert set(model.state_dict()) == keys              # derived caches, not parameters


@torch.no_grad()
def attention_step_bounds(attn, xs):
    """Worst-case float32 rounding bounds of :meth:`CausalLinearAttention.step` (any summation
    order, FMA or not) over the inputs ``xs [T, B, D]``, from float64 magnitudes of the same
    inputs (tests/numerics.py; first order in u, the O(u^2) terms are ~1e-12 of these).

    One float32 computation of each quantity is within these of the exact value:
    - projections q, k, v (D products and a bias): gamma(D+1) (|W| |x| + |b|); the feature
      map (elu + 1: an expm1 of 1 ulp, then + 1) adds 3u max(1, phi) and passes an error in
      its argument on at most unchanged (phi' = min(1, e^a) <= 1);
    - the state after t steps, S_t = sum_j phi(k_j) v_j^T (z: v = 1 exactly): gamma(t)
      sum_j |phi(k_j) v_j| (t products, t - 1 additions) plus sum_j (dk |v| + phi(k) dv);
    - the output: phi(q) . S over E terms, phi(q) . z + eps over E + 1 positive terms, the
      division, the output projection over D + 1 terms, then x + it.

    Returns:
        (exact ``x + output`` ``[T, B, D]``, its bounds ``[T, B, D]``, exact final ``[S, z]``
        ``[B, H, E, M+1]``, its bound), in float64; the bounds are one computation's: two
        computations differ by at most twice them.
    """
    u = U32
    a = copy.deepcopy(attn).double()
    E, D = a.qkv.in_features // a.n_heads, a.qkv.in_features
    w_abs, b_abs = a.qkv.weight.abs(), a.qkv.bias.abs()
    wo_abs, bo_abs = a.out.weight.abs(), a.out.bias.abs()

    def heads(t):                                                       # [..., D] → [..., H, E]
        return t.unflatten(-1, (a.n_heads, -1))

    s = ds = None
    outs, out_bounds = [], []
    for x in xs.double():
        q, k, v = a._heads(x)                                               # exact, [B, H, E]
        v = torch.cat((v, torch.ones_like(v[..., :1])), -1)                 # [v, 1]: z last
        mag_q, mag_k, mag_v = map(heads, (x.abs() @ w_abs.t() + b_abs).chunk(3, -1))
        dq = gamma(D + 1) * mag_q + 3 * u * q.clamp(min=1)
        dk = gamma(D + 1) * mag_k + 3 * u * k.clamp(min=1)
        dv = torch.cat((gamma(D + 1) * mag_v, torch.zeros_like(v[..., :1])), -1)
        term = k.unsqueeze(-1) * v.unsqueeze(-2)                            # [B, H, E, M+1]
        term_err = dk.unsqueeze(-1) * v.abs().unsqueeze(-2) + k.unsqueeze(-1) * dv.unsqueeze(-2)
        if s is None:
            s, abs_sum, input_err, t = term, term.abs(), term_err, 1
        else:
            s, abs_sum, input_err, t = s + term, abs_sum + term.abs(), input_err + term_err, t + 1
        ds = gamma(t) * abs_sum + input_err
        o = torch.einsum("bhe,bhem->bhm", q, s)                             # [num, den - eps]
        do = (gamma(E + 1) * torch.einsum("bhe,bhem->bhm", q, s.abs())
              + torch.einsum("bhe,bhem->bhm", dq, s.abs())
              + torch.einsum("bhe,bhem->bhm", q, ds))
        num, den = o[..., :-1], o[..., -1:] + a.eps
        y = num / den
        dy = ((do[..., :-1] + y.abs() * do[..., -1:]) / den + u * y.abs()).flatten(-2)
        y = y.flatten(-2)
        outs.append(x + a.out(y))
        out_bounds.append(dy @ wo_abs.t() + gamma(D + 1) * (y.abs() @ wo_abs.t() + bo_abs)
                          + u * outs[-1].abs())
    return torch.stack(outs), torch.stack(out_bounds), s, ds


def test_fused_attention_step_equals_the_reference_step():
    """The fused step's outputs and state equal the reference step's within twice the
    worst-case float32 bound of one computation: the state is a running sum, so its tolerance
    grows with the steps and the magnitude of what is summed (failed on an AMD EPYC with a
    fixed atol=1e-6)."""
    torch.manual_seed(0)
    attn = CausalLinearAttention(16, 2)
    weights = attn.fused_step_weights()
    xs = torch.randn(20, 3, 16)
    exact, bounds, exact_state, state_bound = attention_step_bounds(attn, xs)
    fused, state = FusedStepState(3, 2, 16), None
    with torch.no_grad():
        for i, x in enumerate(xs):
            want, state = attn.step(x, state)
            want = x + want
            got = x + fused_step(x, weights, fused) @ weights[2]    # as CMT adds it
            assert_within(want, exact[i], bounds[i], f"reference output {i} vs float64")
            assert_within(got, want, 2 * bounds[i], f"output {i}")
    want = torch.cat((state[0], state[1][..., None]), -1)
    assert_within(want, exact_state, state_bound, "reference state [S, z] vs float64")
    assert_within(fused.s, want, 2 * state_bound, "state [S, z]")


def test_attention_step_state_is_constant_size():
    attn = CausalLinearAttention(16, 2)
    out, state = attn.step(torch.randn(3, 16), None)
    sizes = [t.shape for t in state]
    for _ in range(10):
        out, state = attn.step(torch.randn(3, 16), state)
    assert [t.shape for t in state] == sizes == [(3, 2, 8, 8), (3, 2, 8)]


def test_conditioning_reaches_the_first_prediction():
    model = tiny_model()
    tokens, beat, timing, genre, instruments = random_batch(model.cfg)
    with torch.no_grad():
        a = model(tokens, beat, timing, torch.tensor([0, 0]), instruments)["type"]
        b = model(tokens, beat, timing, torch.tensor([1, 1]), instruments)["type"]
        c = model(tokens, beat, timing, torch.tensor([0, 0]), 1 - instruments)["type"]
    assert not torch.allclose(a[:, 0], b[:, 0]) and not torch.allclose(a[:, 0], c[:, 0])


def test_per_token_conditioning_starts_at_zero_then_reaches_every_position():
    plain = tiny_model()
    every = tiny_model(condition_every_token=True)
    every.load_state_dict(plain.state_dict(), strict=False)
    batch = random_batch(plain.cfg)
    with torch.no_grad():
        torch.testing.assert_close(every(*batch)["pitch"], plain(*batch)["pitch"])
        every.token_genre.weight.normal_()
        tokens, beat, timing, _, instruments = batch
        a = every(tokens, beat, timing, torch.tensor([0, 0]), instruments)["pitch"]
        b = every(tokens, beat, timing, torch.tensor([1, 1]), instruments)["pitch"]
    # The genre changes the last prediction as much as the first: it does not fade.
    first, last = (a[:, 0] - b[:, 0]).abs().mean(), (a[:, -1] - b[:, -1]).abs().mean()
    assert last > 0.3 * first > 0


def test_masked_loss_ignores_attributes_the_target_type_does_not_use():
    model = tiny_model()
    batch = random_batch(model.cfg, B=1, L=4)
    tokens = batch[0]
    tokens[0, :, 0] = torch.tensor([1, 2, 3, 0])       # bar, beat, note, pad
    logits = model(*batch)
    losses, counts = masked_losses(logits, tokens)
    assert {a: int(n) for a, n in counts.items()} == {
        "type": 3, "beat": 1, "density": 2, "strength": 1, "instrument": 1, "pitch": 1,
        "duration": 1}
    # Pitch logits at the bar, beat and pad positions do not matter.
    logits["pitch"] = logits["pitch"].clone()
    logits["pitch"][0, [0, 1, 3]] += torch.randn(3, 129) * 10
    assert torch.equal(masked_losses(logits, tokens)[0]["pitch"], losses["pitch"])


def test_save_load_gives_identical_outputs(tmp_path):
    model = tiny_model()
    batch = random_batch(model.cfg)
    save_model(tmp_path / "m.safetensors", model, {"genres": ["a", "b", "c", "d"]})
    loaded, extra = load_model(tmp_path / "m.safetensors")
    assert extra == {"genres": ["a", "b", "c", "d"]} and loaded.cfg == model.cfg
    with torch.no_grad():
        a, b = model(*batch), loaded(*batch)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_load_model_rejects_bad_files(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(path, tiny_model())
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="cut.safetensors"):
        load_model(tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_text("not a model")
    with pytest.raises(ModelLoadError, match="junk.safetensors"):
        load_model(tmp_path / "junk.safetensors")
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
    # Weights of another shape under this config's name: refused, not partially loaded.
    from safetensors import safe_open
    from safetensors.torch import save_file
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    other = tiny_model(d_model=48).state_dict()
    save_file({k: v.contiguous() for k, v in other.items()}, str(tmp_path / "x.safetensors"), meta)
    with pytest.raises(ModelLoadError, match="do not match"):
        load_model(tmp_path / "x.safetensors")


def test_presets_load_and_paper_has_the_papers_sizes():
    model_cfg, train_cfg = load_config("paper")
    assert (model_cfg.n_layers, model_cfg.n_heads, model_cfg.d_model, model_cfg.d_ff,
            model_cfg.dropout) == (12, 8, 512, 2048, 0.1)
    order = ("type", "beat", "density", "strength", "pitch", "duration", "instrument")
    assert tuple(model_cfg.emb_sizes[a] for a in order) == (32, 64, 64, 64, 512, 128, 32)
    for name in ("debug", "default"):
        m, t = load_config(name)
        assert m.d_model < model_cfg.d_model and t.max_steps > 0


@pytest.mark.parametrize("text,match", [
    ("model:\n  n_layer: 2\n", "unknown key 'n_layer'"),
    ("model:\n  d_model: '64'\n", "d_model must be int"),
    ("train:\n  lr: fast\n", "lr must be float"),
    ("train:\n  batch_size: true\n", "batch_size must be int"),
    ("optim:\n  lr: 1\n", "unknown section"),
    ("model: [1, 2\n", "not valid YAML"),
    ("model:\n  emb_sizes: {type: 8}\n", "emb_sizes needs exactly"),
])
def test_bad_config_files_are_clear_errors(tmp_path, text, match):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=match):
        load_config(path)


def test_unknown_preset_names_the_presets():
    presets = ", ".join(sorted(p.stem for p in (Path(vbgm_core.__file__).parent / "configs").glob("*.yaml")))
    with pytest.raises(InputError, match=presets):
        load_config("huge")


def test_interrupted_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    from vbgm_core.model.checkpoint import load_checkpoint, save_checkpoint

    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"step": 1, "model": tiny_model().state_dict()})

    def dies_mid_write(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"step": 2})
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_a_damaged_model_file_is_refused_on_load_naming_it(tmp_path):
    """Issue 27: NaN weights failed deep in sampling, a cut-off config JSON as a
    JSONDecodeError; each is now one ModelLoadError naming the file (the header-only reading,
    scorer.model_info, too, for what the header holds)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from vbgm_core.scorer import model_info

    path = tmp_path / "m.safetensors"
    save_model(path, tiny_model(), {"genres": ["a", "b", "c", "d"]})
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}

    def damaged(name, metadata=None, weights=None):
        save_file({**tensors, **(weights or {})}, str(tmp_path / name), {**meta, **(metadata or {})})
        return tmp_path / name

    weight = next(k for k, v in sorted(tensors.items()) if v.is_floating_point())
    for value in (float("nan"), float("inf")):
        bad = tensors[weight].clone()
        bad.view(-1)[3] = value
        with pytest.raises(ModelLoadError, match=f"nan.safetensors: damaged weights: {weight}"):
            load_model(damaged("nan.safetensors", weights={weight: bad}))
    cut = damaged("cut.safetensors", {"config": meta["config"][:40]})
    for load in (load_model, model_info):
        with pytest.raises(ModelLoadError, match="cut.safetensors: damaged model metadata "
                           r"\('config' is not valid JSON"):
            load(cut)
    many = damaged("many.safetensors", {"extra": '{"genres": ["a", "b", "c", "d", "e"]}'})
    for load in (load_model, model_info):
        with pytest.raises(ModelLoadError, match="many.safetensors: the model lists 5 genres "
                           "but has only 4"):
            load(many)
    twice = damaged("twice.safetensors", {"extra": '{"genres": ["a", "a"]}'})
    with pytest.raises(ModelLoadError, match="twice.safetensors: damaged model metadata"):
        load_model(twice)
    assert load_model(path)[1] == {"genres": ["a", "b", "c", "d"]}   # the sound file loads


def test_a_model_files_header_is_read_without_torch():
    """`vbgm genres` and the scorer's first checks read the header only: importing torch takes
    seconds that an editor's button waits for. A new torch import on that path fails here."""
    import subprocess
    import sys

    code = ("import sys; from vbgm_core.scorer import model_genres; "
            "print(model_genres()); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split("\n")
    assert "pop" in out[0] and out[1] == "False"
