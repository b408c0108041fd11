"""`vbgm train` on real songs: overfitting, exact resume, conditioning, bad input, DDP."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, write_tiny_config

from vbgm_core.cli import main
from vbgm_core.errors import InputError, ModelLoadError
from vbgm_core.model.checkpoint import load_model
from vbgm_core.training.data import prepare
from vbgm_core.training.train import train


def write_config(path, max_steps=250, log_every=25, **kw):
    return write_tiny_config(path, max_steps=max_steps, log_every=log_every, **kw)


def train_rows(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == "train"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, fixtures):
    """Two real songs of two genres: POP909 001 (pop, piano) and an OpenMSX tune (rock)."""
    root = tmp_path_factory.mktemp("train")
    for genre, name in (("pop", "pop909_001.mid"), ("rock", "coconut_run2.mid")):
        (root / "midi" / genre).mkdir(parents=True)
        shutil.copy(fixtures / "midi" / name, root / "midi" / genre / name)
    prepare(root / "midi", root / "data", workers=1)
    return root / "data"


@pytest.fixture(scope="module")
def overfit_run(dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("overfit")
    cfg = write_config(root / "tiny.yaml")
    result = train(cfg, dataset, root / "run", threads=1)
    return result


def test_tiny_model_overfits_two_real_songs(overfit_run):
    rows = train_rows(overfit_run.run_dir)
    assert overfit_run.step == 250 and not overfit_run.stopped_early
    # Uniform guessing costs ~20.7 (sum of log vocab sizes); memorising two songs goes far below.
    assert rows[0]["loss"] > 12.0
    assert rows[-1]["loss"] < 5.0, rows[-1]
    assert set(rows[-1]) >= {"type", "beat", "density", "strength", "instrument", "pitch",
                             "duration", "lr", "tokens_per_s"}
    assert (overfit_run.run_dir / "loss.png").stat().st_size > 1000


def test_genre_start_token_changes_the_prediction(overfit_run):
    model, extra = load_model(overfit_run.run_dir / "model.safetensors")
    assert extra["genres"] == ["pop", "rock"]
    for mask in ([0, 1, 0, 0, 0], [1, 1, 0, 1, 0]):       # piano; drums+piano+bass
        state = model.start(torch.tensor([0, 1]), torch.tensor([mask, mask]))
        bar = torch.tensor([1, 1])
        p = model.attribute_logits(state.hidden, bar)["density"].softmax(-1)
        total_variation = 0.5 * (p[0] - p[1]).abs().sum().item()
        assert total_variation > 0.2, (mask, total_variation)


def test_resume_continues_the_same_loss_curve(dataset, tmp_path):
    cfg = write_config(tmp_path / "c.yaml", dropout=0.1, max_steps=16, log_every=1)
    train(cfg, dataset, tmp_path / "straight", threads=1)
    first = train(cfg, dataset, tmp_path / "split", max_steps=8, threads=1)
    assert first.stopped_early and first.step == 8
    resumed = train(None, dataset, tmp_path / "split", resume=True, threads=1)
    assert resumed.step == 16 and not resumed.stopped_early
    a, b = train_rows(tmp_path / "straight"), train_rows(tmp_path / "split")
    assert [r["step"] for r in b] == list(range(1, 17))
    for ra, rb in zip(a, b):
        assert rb["loss"] == pytest.approx(ra["loss"], abs=1e-5), ra["step"]
    # The final weights are the same too.
    wa, _ = load_model(tmp_path / "straight" / "model.safetensors")
    wb, _ = load_model(tmp_path / "split" / "model.safetensors")
    for (name, x), (_, y) in zip(wa.state_dict().items(), wb.state_dict().items()):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5, msg=name)


def test_init_from_trains_a_finished_run_further(overfit_run, dataset, tmp_path, capsys):
    weights = overfit_run.run_dir / "model.safetensors"
    cfg = write_config(tmp_path / "c.yaml", max_steps=5, log_every=1)
    result = train(cfg, dataset, tmp_path / "more", init_from=weights, threads=1)
    rows = train_rows(tmp_path / "more")
    # A new schedule (steps count from 1, warm-up again) that starts from the trained weights:
    # the first loss is the trained model's, far below a fresh model's (> 12).
    assert result.step == 5 and [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["loss"] < 6.0, rows[0]
    _, extra = load_model(tmp_path / "more" / "model.safetensors")
    assert extra["init"]["path"] == str(weights) and extra["init"]["step"] == 250
    # Resuming such a run keeps its provenance.
    first = train(cfg, dataset, tmp_path / "split", init_from=weights, max_steps=2, threads=1)
    train(None, dataset, first.run_dir, resume=True, threads=1)
    assert load_model(first.run_dir / "model.safetensors")[1]["init"]["step"] == 250

    # A run may switch per-token conditioning on: it starts from the same predictions.
    every = tmp_path / "every.yaml"
    every.write_text(cfg.read_text().replace("d_model: 64", "d_model: 64\n  condition_every_token: true"))
    train(every, dataset, tmp_path / "every", init_from=weights, max_steps=1, threads=1)
    assert train_rows(tmp_path / "every")[0]["loss"] == pytest.approx(rows[0]["loss"], abs=1e-4)
    assert load_model(tmp_path / "every" / "model.safetensors")[0].cfg.condition_every_token

    with pytest.raises(InputError, match="--init-from starts a new run"):
        train(None, dataset, tmp_path / "split", resume=True, init_from=weights)
    other = tmp_path / "other.yaml"
    other.write_text(cfg.read_text().replace("d_model: 64", "d_model: 32"))
    assert main(["train", "--config", str(other), "--data", str(dataset), "-o",
                 str(tmp_path / "r2"), "--init-from", str(weights)]) == 3
    assert "another model config (d_model" in capsys.readouterr().err


def test_max_minutes_checkpoints_and_stops(dataset, tmp_path):
    cfg = write_config(tmp_path / "c.yaml", max_steps=50)
    result = train(cfg, dataset, tmp_path / "run", max_minutes=0.0, threads=1)
    assert result.stopped_early and result.step == 1
    assert "resume with --resume" in result.describe()
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["step"] == 1


def test_bad_datasets_and_checkpoints_are_clear_errors(dataset, tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml", max_steps=2)
    with pytest.raises(InputError, match="not a vbgm dataset"):
        train(cfg, tmp_path / "missing", tmp_path / "r0")
    (tmp_path / "empty").mkdir()
    assert main(["train", "--config", str(cfg), "--data", str(tmp_path / "empty"),
                 "-o", str(tmp_path / "r0")]) == 2
    assert "not a vbgm dataset" in capsys.readouterr().err

    run = tmp_path / "run"
    train(cfg, dataset, run, threads=1)
    with pytest.raises(InputError, match="already holds a training run"):
        train(cfg, dataset, run)
    # Another config: refused, naming what differs.
    other = tmp_path / "other.yaml"
    other.write_text(cfg.read_text().replace("d_model: 64", "d_model: 32"))
    with pytest.raises(ModelLoadError, match="another config.*d_model"):
        train(other, dataset, run, resume=True)
    # A truncated checkpoint, or a file that is no checkpoint: refused, never partly loaded.
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    assert main(["train", "--data", str(dataset), "-o", str(run), "--resume"]) == 3
    assert "truncated or damaged" in capsys.readouterr().err
    torch.save({"weights": torch.zeros(3)}, run / "checkpoint.pt")
    with pytest.raises(ModelLoadError, match="not a vbgm training checkpoint"):
        train(None, dataset, run, resume=True)
    with pytest.raises(ModelLoadError, match="checkpoint not found"):
        train(None, dataset, tmp_path / "nothing", resume=True)


def test_ddp_under_torchrun_on_cpu(dataset, tmp_path):
    cfg = write_config(tmp_path / "c.yaml", max_steps=4, log_every=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "vbgm_core", "train", "--config", str(cfg), "--data", str(dataset),
         "-o", str(tmp_path / "run"), "--device", "cpu", "--threads", "1"],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = train_rows(tmp_path / "run")
    assert [r["step"] for r in rows] == [2, 4]       # rank 0 alone writes
    model, _ = load_model(tmp_path / "run" / "model.safetensors")
    assert model.cfg.n_genres == 2


# ---------------------------------------------------------------- precision and GPU script (issue 24)

def test_bf16_run_trains_and_saves_float32_weights(dataset, tmp_path):
    from safetensors.torch import load_file

    cfg = write_config(tmp_path / "c.yaml", max_steps=60, log_every=10)
    cfg.write_text(cfg.read_text() + "  precision: bf16\n")
    result = train(cfg, dataset, tmp_path / "run", threads=1)
    rows = train_rows(tmp_path / "run")
    assert result.step == 60 and rows[0]["loss"] > 12.0
    assert rows[-1]["loss"] < rows[0]["loss"] - 4.0, (rows[0]["loss"], rows[-1]["loss"])
    # Autocast leaves the weights and AdamW's state float32: so are the files.
    assert {t.dtype for t in load_file(tmp_path / "run" / "model.safetensors").values()} == {
        torch.float32}
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert {t.dtype for t in state["model"].values()} == {torch.float32}
    assert state["train_config"]["precision"] == "bf16"


def test_resume_may_switch_precision(dataset, tmp_path):
    cfg = write_config(tmp_path / "c.yaml", max_steps=8, log_every=1)
    first = train(cfg, dataset, tmp_path / "run", max_steps=4, threads=1)
    assert first.step == 4
    bf16 = tmp_path / "bf16.yaml"
    bf16.write_text(cfg.read_text() + "  precision: bf16\n")
    resumed = train(bf16, dataset, tmp_path / "run", resume=True, threads=1)
    assert resumed.step == 8
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["train_config"]["precision"] == "bf16"
    # Anything else that differs is still refused.
    other = tmp_path / "other.yaml"
    other.write_text(bf16.read_text().replace("lr: 3.0e-3", "lr: 1.0e-3"))
    with pytest.raises(ModelLoadError, match="train differs in lr"):
        train(other, dataset, tmp_path / "run", resume=True)


def test_precision_must_be_known(tmp_path):
    from vbgm_core.model.config import load_config

    cfg = write_config(tmp_path / "c.yaml")
    cfg.write_text(cfg.read_text() + "  precision: fp16\n")
    with pytest.raises(InputError, match="precision must be one of auto, bf16, fp32"):
        load_config(cfg)


def test_bundled_model_loses_nothing_under_bf16(dataset):
    """bf16 autocast must not change an fp32-trained model's loss: the linear-attention
    feature map elu(x)+1 computed in bf16 cost the bundled model +1.0 nats (issue 24)."""
    from vbgm_core.model.cmt import masked_losses
    from vbgm_core.training.data import TokenDataset
    from vbgm_core.training.train import CropSampler

    model, _ = load_model(ROOT / "vbgm_core" / "assets" / "model.safetensors")
    model = model.float().eval()
    ds = TokenDataset(dataset)
    batch = CropSampler(ds, range(len(ds)), 512, 0.5).batch(2, torch.Generator().manual_seed(0))
    losses = {}
    with torch.no_grad():
        for bf16 in (False, True):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                per, _ = masked_losses(model(**batch), batch["tokens"])
            losses[bf16] = sum(v.item() for v in per.values())
    assert abs(losses[True] - losses[False]) < 0.02, losses


def test_train_gpu_script_runs_on_cpu_without_miditoolkit(dataset, tmp_path):
    """scripts/train_gpu.sh end to end on the CPU: pack the dataset, unpack and train (the
    debug config, a few steps) where miditoolkit cannot be imported, as on the GPU machine."""
    stub = tmp_path / "stub" / "miditoolkit"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('no miditoolkit on this machine')\n")
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(stub.parent)}
    script = ROOT / "scripts" / "train_gpu.sh"
    pack = subprocess.run(["bash", str(script), "pack", str(dataset), str(tmp_path / "pack")],
                          check=False, capture_output=True, text=True, env=env, timeout=120)
    assert pack.returncode == 0, pack.stderr[-2000:]
    assert (tmp_path / "pack" / "tokens.xz").is_file()
    assert not (tmp_path / "pack" / "tokens.npy").exists()
    proc = subprocess.run(
        ["bash", str(script), "train", "--data", str(tmp_path / "pack"), "-o", str(tmp_path / "run"),
         "--max-minutes", "1", "--config", "debug", "--device", "auto", "--max-steps", "6",
         "--calibrate-steps", "2", "--threads", "1", "--export", str(tmp_path / "export"),
         "--work-dir", str(tmp_path / "unpacked")],
        check=False, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "max_steps 6" in proc.stdout
    rows = train_rows(tmp_path / "run")
    assert rows[-1]["step"] == 6
    summary = json.loads((tmp_path / "export" / "gpu_run.json").read_text())
    assert summary["steps"] == 6 and not summary["stopped_early"]
    _, extra = load_model(tmp_path / "export" / "model_fp16.safetensors")
    assert extra["genres"] == ["pop", "rock"] and extra["step"] == 6
    assert (tmp_path / "export" / "metrics.jsonl").is_file()
    # The unpacked tokens are the original ones.
    import numpy as np
    assert np.array_equal(np.load(tmp_path / "unpacked" / "tokens.npy"),
                          np.load(dataset / "tokens.npy"))


def test_compare_models_keeps_the_base_against_itself(tiny_model, tiny_dataset, sample_clip,
                                                       tmp_path):
    """scripts/compare_models.py (issue 24's ratchet) on the tiny model against itself: every
    figure is equal in both columns, so the candidate does not win (its loss is not lower);
    and the verdict's rules on made-up rows."""
    import importlib.util
    import math

    import numpy as np

    spec = importlib.util.spec_from_file_location("compare_models",
                                                  ROOT / "scripts" / "compare_models.py")
    compare_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare_models)
    # The tiny dataset has only training songs: hold two out as test songs and one as valid.
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    lines = (data / "index.csv").read_text().splitlines()
    splits = {1: "test", 2: "valid", 3: "test"}
    lines = [line.rsplit(",", 1)[0] + "," + splits[i] if i in splits else line
             for i, line in enumerate(lines)]
    (data / "index.csv").write_text("\n".join(lines) + "\n")
    # A genre classifier that knows the tiny model's genres (made-up weights: the figures only
    # have to be computed the same way for both columns).
    from vbgm_core.metrics.genre_features import FEATURE_NAMES

    n = len(FEATURE_NAMES)
    classifier = tmp_path / "classifier.json"
    weights = np.random.default_rng(0).normal(size=(2, n))
    compare_models.GenreClassifier(["pop", "rock"], np.zeros(n), np.ones(n), weights,
                                   np.zeros(2)).to_json(classifier)
    out = tmp_path / "compare.json"
    result = compare_models.main([str(tiny_model), str(tiny_model), "--data", str(data),
                                  "--clips", str(sample_clip), "--seeds", "0", "--crops", "2",
                                  "--crop-len", "128", "--classifier", str(classifier),
                                  "--json", str(out)])
    assert json.loads(out.read_text())["verdict"] == result["verdict"] == "keep the bundled model"
    assert any("test loss" in r and "not lower" in r for r in result["reasons"])
    assert not any(r["status"] == "WORSE" for r in result["rows"])
    figures = {r["figure"].split(" [")[0].split(" (")[0] for r in result["rows"]}
    assert {"test loss", "valid loss", "genre balanced accuracy", "GS", "H1", "H4",
            "drum repetition", "pitched repetition", "notes per bar", "out-of-scale share",
            "control error: density", "control error: strength", "control error: time"} <= figures
    for r in result["rows"]:
        assert r["base"] == r["candidate"] or (math.isnan(r["base"]) and math.isnan(r["candidate"])), r
    assert len(result["pieces"]) == 2   # one clip x two genres x one seed
    assert result["losses"]["test"]["base"]["per_song"] == result["losses"]["test"]["candidate"]["per_song"]
    # a setting judged on the same weights: the candidate's pieces are made with it
    setting = compare_models.main([str(tiny_model), str(tiny_model), "--data", str(data),
                                   "--clips", str(sample_clip), "--seeds", "0", "--crops", "1",
                                   "--crop-len", "128", "--classifier", str(classifier),
                                   "--candidate-sampling", "genre.guidance=0"])
    assert setting["settings"]["sampling"] == {"base": [], "candidate": ["genre.guidance=0"]}
    assert [p["base"]["n_tokens"] for p in setting["pieces"]] == \
        [p["base"]["n_tokens"] for p in result["pieces"]]        # the base as before
    assert any(p["base"] != p["candidate"] for p in setting["pieces"])   # unguided: other notes

    # The verdict's rules: a lower test loss wins unless a row is worse beyond its tolerance.
    row = compare_models.make_row
    rows = [row("test loss", 5.6, 5.5, "decisive", 0.0),
            row("H1", 2.0, 2.3, "closer", 0.1, 2.2),      # crossed the songs' value: closer
            row("control error: time", 0.001, 0.0015, "lower", 0.001)]
    assert compare_models.verdict(rows) == ("candidate wins", [])
    rows.append(row("genre balanced accuracy", 0.40, 0.30, "higher", 0.05))
    decision, reasons = compare_models.verdict(rows)
    assert decision == "keep the bundled model" and len(reasons) == 1
    assert reasons[0].startswith("genre balanced accuracy: worse by 0.1")
    # A setting (--candidate-sampling) is judged on the same weights: the loss ties, and the
    # other rows decide; the same weights under the same settings never win.
    rows = [row("test loss", 5.5, 5.5, "decisive", 0.0),
            row("genre balanced accuracy", 0.30, 0.45, "higher", 0.05)]
    assert compare_models.verdict(rows, setting_changed=True) == ("candidate wins", [])
    assert compare_models.verdict(rows)[0] == "keep the bundled model"
    rows.append(row("H1", 2.0, 1.5, "closer", 0.1, 2.0))
    assert compare_models.verdict(rows, setting_changed=True)[0] == "keep the bundled model"
