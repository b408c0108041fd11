"""`vbgm eval`: the matching score on hand-made targets, and the whole command on two real clips
with the tiny trained model and a tiny real dataset."""

import json
import math
import shutil
import subprocess

import numpy as np
import pytest

from vbgm_core.cli import main
from vbgm_core.evaluation.baselines import (
    MS_EPS,
    best_match,
    matching_score,
    song_targets,
    song_window,
    window_scores,
)
from vbgm_core.evaluation.report import CONTROL_ERRORS, MUSDR
from vbgm_core.music.tokenizer import CPTokenizer, bar_densities, tokens_errors
from vbgm_core.training.data import TokenDataset, prepare, split_of

HELD_OUT = "pop/heldout_24.mid"  # a path that split_of() puts in the test split


def test_perfect_match_scores_highest():
    rng = np.random.default_rng(0)
    d = rng.integers(0, 17, 6).astype(float)
    s = np.zeros(96)
    s[rng.choice(96, 10, replace=False)] = rng.integers(1, 25, 10)
    assert matching_score(d, s, d, s) == pytest.approx(1 / MS_EPS)
    worse_density = matching_score(d + np.eye(6)[2], s, d, s)
    assert worse_density == pytest.approx(1 / (1 / 6 + MS_EPS))  # MSE of one unit error in 6 bars
    # Music strengths off the video's beats are masked out: they never lower the score.
    off_beats = np.where(s > 0, s, 7)
    assert matching_score(d, off_beats, d, s) == pytest.approx(1 / MS_EPS)
    louder = s + (s > 0)  # one more note on every visual beat
    assert matching_score(d, louder, d, s) == pytest.approx(1 / (10 / 96 + MS_EPS))
    assert matching_score(d, s, d, s) > matching_score(d, louder, d, s) > 0


def test_window_search_finds_a_planted_segment():
    rng = np.random.default_rng(1)
    d_video = rng.integers(0, 17, 4).astype(float)
    s_video = np.zeros(64)
    s_video[[0, 5, 21, 40, 63]] = [3, 1, 8, 2, 5]
    songs = {}
    for row in range(5):
        n = 20 + row
        d = rng.integers(0, 17, n).astype(float)
        s = rng.integers(0, 4, 16 * n).astype(float)
        songs[row] = (d, s)
    d, s = songs[3]
    d[9:13] = d_video
    s[16 * 9:16 * 13] = np.where(s_video > 0, s_video, s[16 * 9:16 * 13])  # other ticks: noise
    match = best_match(songs, d_video, s_video)
    assert (match.song, match.offset_bars) == (3, 9)
    assert match.score == pytest.approx(1 / MS_EPS)
    scores = window_scores(d, s, d_video, s_video)
    assert len(scores) == len(d) - 4 + 1 and int(np.argmax(scores)) == 9
    # A song shorter than the video is padded with empty bars: one window.
    assert window_scores(d[:2], s[:32], d_video, s_video).shape == (1,)


def test_song_window_is_a_valid_piece(fixtures):
    tokens = CPTokenizer().encode(fixtures / "midi" / "pop909_001.mid").tokens
    n = len(bar_densities(tokens))
    window = song_window(tokens, 3, 5)
    assert tokens_errors(window) == []
    assert bar_densities(window).tolist() == bar_densities(tokens)[3:8].tolist()
    d, s = song_targets(window)
    assert np.array_equal(s, song_targets(tokens)[1][16 * 3:16 * 8])
    tail = song_window(tokens, n - 2, 6)  # runs past the song's end: empty bars after it
    assert tokens_errors(tail) == []
    assert bar_densities(tail).tolist() == bar_densities(tokens)[-2:].tolist() + [0] * 4
    assert d.shape == (5,)


@pytest.fixture(scope="module")
def eval_data(tiny_dataset, tmp_path_factory):
    """The tiny dataset plus one song under a test-split path (a copy of a training song:
    enough to exercise the held-out reference row)."""
    assert split_of(HELD_OUT) == "test"
    root = tmp_path_factory.mktemp("eval_data")
    shutil.copytree(tiny_dataset.parent / "midi", root / "midi")
    shutil.copy(root / "midi" / "pop" / "pop909_001.mid", root / "midi" / HELD_OUT)
    prepare(root / "midi", root / "data", workers=1)
    return root / "data"


@pytest.fixture(scope="module")
def clips(sample_clip, tmp_path_factory):
    """A folder with the bundled clip and a 2.5 s re-encoded cut of it."""
    folder = tmp_path_factory.mktemp("clips")
    shutil.copy(sample_clip, folder / "bunny.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-ss", "1", "-t", "2.5", "-i", str(sample_clip),
                    "-an", "-c:v", "libx264", "-preset", "ultrafast", str(folder / "cut.mp4")],
                   check=True)
    (folder / "notes.txt").write_text("not a video: ignored")
    return folder


def test_eval_quick_writes_every_file(clips, tiny_model, eval_data, tmp_path):
    out = tmp_path / "report"
    code = main(["eval", str(clips), "-o", str(out), "--model", str(tiny_model), "--data",
                 str(eval_data), "--genre", "pop", "--quick", "--seeds", "1", "--progress",
                 "none"])
    assert code == 0
    for name in ("report.md", "report.json", "plots/metrics_vs_control.png", "plots/bunny.png",
                 "plots/cut.png", "rhythm/bunny.json", "rhythm/cut.json",
                 "midi/cut/C=0.7_seed0.mid", "midi/cut/unconditioned_seed0.mid",
                 "midi/cut/matched.mid"):
        assert (out / name).is_file(), name
    assert (out / "plots" / "metrics_vs_control.png").stat().st_size > 20_000
    report = json.loads((out / "report.json").read_text())
    rows = {"C=0", "C=0.7", "C=1", "unconditioned", "matched", "reference"}
    assert set(report["summary"]) == rows
    assert [v["name"] for v in report["videos"]] == ["bunny", "cut"]
    runs = report["runs"]
    assert len(runs) == 2 * (3 + 1 + 1)
    for r in runs:
        assert r["density_error"] is not None and math.isfinite(r["density_error"])
        assert r["length_error_s"] <= 0  # nothing runs past the video
        assert r["n_tokens"] > 0
    for row in rows - {"reference"}:
        s = report["summary"][row]
        assert s["n"] == 2
        assert all(s["mean"][m] is not None for m in ("density_error", "length_error_s"))
    # Full control follows the video's densities more closely than none.
    assert report["summary"]["C=1"]["mean"]["density_error"] <= \
        report["summary"]["C=0"]["mean"]["density_error"]
    matched = [r for r in runs if r["condition"] == "matched"]
    train_paths = {r["path"] for r in TokenDataset(eval_data).index if r["split"] == "train"}
    assert len(matched) == 2 and HELD_OUT not in train_paths
    assert all(r["match_song"] in train_paths and r["matching_score"] > 0 for r in matched)
    ref = report["summary"]["reference"]
    assert report["settings"]["reference_split"] == "test" and ref["n"] == 1
    assert all(math.isfinite(ref["mean"][m])
               for m in ("pitch_entropy", "groove_similarity", "structureness"))
    # Each summary row is the mean and spread of its own runs.
    for row in rows - {"reference"}:
        values = [r["density_error"] for r in runs if r["condition"] == row]
        assert report["summary"][row]["mean"]["density_error"] == pytest.approx(np.mean(values),
                                                                                abs=1e-6)
    md = (out / "report.md").read_text()
    # Our numbers in report.md's tables, the paper's beside the analogous rows only.
    paper = report["paper"]
    table1 = markdown_table(md, "Table 1")
    assert list(table1) == ["held-out songs (test split)", "C=0", "C=0.7", "C=1",
                            "unconditioned", "matched"]
    beside = {"held-out songs (test split)": paper["table1"]["training data (LPD)"],
              "C=0.7": paper["table1"]["CMT with video control"],
              "unconditioned": paper["table1"]["CMT without control"]}
    for label, cells in table1.items():
        row = "reference" if label.startswith("held-out") else label
        assert cells[:3] == [shown(report["summary"][row], m) for m in MUSDR], label
        assert cells[3] == str(report["summary"][row]["n"])
        expected = [f"{beside[label][m]:.3f}" for m in MUSDR] if label in beside else ["–"] * 3
        assert cells[4:] == expected, label
    table4 = markdown_table(md, "Table 4")
    assert list(table4) == ["C=0", "C=0.7", "C=1", "unconditioned", "matched"]
    for row, cells in table4.items():
        assert cells[:3] == [shown(report["summary"][row], m) for m in CONTROL_ERRORS], row
        expected = ([f"{paper['table4']['CMT'][m]:.3f}" for m in CONTROL_ERRORS]
                    if row == "C=0.7" else ["–"] * 3)
        assert cells[3:] == expected, row
    assert "symbolic chroma" in md


def markdown_table(md, heading):
    """``{row label: [cells]}`` of the table under the ``## <heading>`` section of report.md."""
    section = md.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")][2:]  # no header
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return {c[0]: c[1:] for c in cells}


def shown(summary, metric):
    """How report.md writes a summary's metric: mean ± std, the mean of a single run, or `–`
    when none was measured."""
    mean, std = summary["mean"][metric], summary["std"][metric]
    if mean is None:
        return "–"
    return f"{mean:.3f} ± {std:.3f}" if summary["n"] > 1 else f"{mean:.3f}"


def test_eval_without_data_skips_the_baselines_and_refuses_overwrite(clips, tiny_model, tmp_path):
    out = tmp_path / "report"
    args = ["eval", str(clips / "cut.mp4"), "-o", str(out), "--model", str(tiny_model),
            "--controls", "0.5", "--seeds", "1", "--progress", "none"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["summary"]) == {"C=0.5", "unconditioned"}
    assert "No --data given" in (out / "report.md").read_text()
    before = (out / "report.json").read_bytes()
    assert main(args) == 2  # exists: refused, untouched
    assert (out / "report.json").read_bytes() == before


def test_eval_bad_input(tiny_model, tmp_path, capsys):
    assert main(["eval", str(tmp_path), "-o", str(tmp_path / "r"), "--model",
                 str(tiny_model)]) == 2
    assert "no video files" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "r"), "--controls",
                 "0.2,1.5", "--model", str(tiny_model)]) == 2
    assert "outside [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
