"""`vbgm score` / `batch` end to end: real clips, real model files, the real synthesizer."""

import hashlib
import json
import re
import subprocess

import miditoolkit
import pytest

from vbgm_core.api import score_video
from vbgm_core.cli import main
from vbgm_core.media import media_duration
from vbgm_core.music.instruments import GROUPS, track_group
from vbgm_core.music.tokenizer import CPTokenizer, bar_densities, tokens_errors
from vbgm_core.video.rhythm import analyze_video


def streams(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, check=True)
    return sorted(out.stdout.split())


@pytest.fixture(scope="module")
def rhythm(sample_clip):
    return analyze_video(sample_clip)


def test_score_cli_end_to_end(sample_clip, tiny_model, tmp_path):
    out, midi, report = tmp_path / "out.mp4", tmp_path / "out.mid", tmp_path / "report.json"
    source_md5 = hashlib.md5(sample_clip.read_bytes()).hexdigest()
    code = main(["score", str(sample_clip), "-o", str(out), "--midi", str(midi), "--report",
                 str(report), "--plot", str(tmp_path / "score.png"), "--model", str(tiny_model),
                 "--stems", str(tmp_path / "stems"),
                 "--genre", "rock", "--seed", "1", "--progress", "none"])
    assert code == 0
    assert streams(out) == ["audio", "video"]
    video_s = media_duration(sample_clip, "video")
    assert abs(media_duration(out, "audio") - video_s) <= 1 / 25
    r = json.loads(report.read_text())
    assert {"duration_s", "tempo_bpm", "n_bars", "genre", "instruments", "control",
            "seed"} <= set(r) and r["genre"] == "rock" and r["seed"] == 1
    assert set(r["control_error"]) == {"density", "strength", "time"}
    music = miditoolkit.MidiFile(str(midi))
    bar_ticks = 4 * music.ticks_per_beat
    last_onset = max(n.start for i in music.instruments for n in i.notes)
    assert last_onset // bar_ticks + 1 <= r["n_bars"]
    assert r["metrics"]["length_error_s"] <= 0  # the music never runs past the video
    assert (tmp_path / "score.png").stat().st_size > 10_000
    stems = sorted(p.name for p in (tmp_path / "stems").glob("*.wav"))  # + vbgm's .vbgm-output
    # one stem a track, named by the group and the program it played ("guitar_distortion_guitar")
    names = [re.sub(r"[^a-z0-9]+", "_", i.name.lower()).strip("_") for i in music.instruments]
    assert stems and stems == sorted(f"{n}.wav" for n in names)
    assert all(n.split("_")[0] in GROUPS for n in names)
    assert hashlib.md5(sample_clip.read_bytes()).hexdigest() == source_md5  # source untouched


def test_full_control_follows_the_video(sample_clip, tiny_model, rhythm):
    result = score_video(sample_clip, model=tiny_model, control=1.0, rhythm=rhythm, render=False)
    assert tokens_errors(result.tokens) == []
    assert bar_densities(result.tokens).tolist() == [b.density for b in rhythm.bars]
    assert result.report["control_error"]["density"] <= 0.05
    assert result.report["control_error"]["time"] <= 0.01


def test_no_control_leaves_the_densities_free(sample_clip, tiny_model, rhythm):
    """C = 1 plays every bar's (floored) target density; C = 0 leaves them to the model."""
    def densities(control, seed):
        result = score_video(sample_clip, model=tiny_model, control=control, rhythm=rhythm,
                             seed=seed, render=False)
        return bar_densities(result.tokens).tolist(), [b.density for b in result.rhythm.bars]
    for seed in range(3):
        played, targets = densities(1.0, seed)
        assert played == [max(t, k) for t, k in zip(targets, played)]   # visual beats may add
    misses = sum(p != t for s in range(3) for p, t in zip(*densities(0.0, s)))
    assert misses >= rhythm.n_bars   # on average a bar per piece, at least


def test_same_seed_same_bytes_other_seed_other_music(sample_clip, tiny_model, rhythm, tmp_path):
    paths = [tmp_path / f"{name}.mid" for name in ("a", "b", "c")]
    for path, seed in zip(paths, (5, 5, 6)):
        score_video(sample_clip, out_midi=path, model=tiny_model, seed=seed, rhythm=rhythm,
                    render=False)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()


def test_instruments_and_genre_are_honoured(sample_clip, tiny_model, rhythm):
    result = score_video(sample_clip, model=tiny_model, instruments=["piano", "bass"],
                         rhythm=rhythm, render=False, genre="pop")
    assert {track_group(i) for i in result.midi.instruments} <= {"piano", "bass"}
    assert result.audio is None
    decoded = CPTokenizer().decode(result.tokens, rhythm.tempo_bpm)
    assert decoded.tempo_changes[0].tempo == pytest.approx(rhythm.tempo_bpm)


@pytest.mark.parametrize("args, message", [
    (["--genre", "jazz"], "unknown genre 'jazz'"),
    (["--instruments", "piano,kazoo"], "unknown instrument(s) kazoo"),
    (["--control", "1.5"], "control degree 1.5 is outside 0..1"),
    (["--tempo", "500"], "tempo"),
])
def test_bad_options_are_one_line_errors(sample_clip, tiny_model, tmp_path, capsys, args, message):
    out = tmp_path / "o.mid"
    code = main(["score", str(sample_clip), "--midi", str(out), "--model", str(tiny_model),
                 "--progress", "none", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err
    assert list(tmp_path.iterdir()) == []


def test_missing_inputs_and_existing_output(sample_clip, tiny_model, tmp_path, capsys):
    assert main(["score", str(sample_clip), "--midi", str(tmp_path / "o.mid"), "--model",
                 str(tmp_path / "none.safetensors"), "--progress", "none"]) == 3
    assert "model file not found" in capsys.readouterr().err
    existing = tmp_path / "keep.mp4"
    existing.write_bytes(b"user's file")
    assert main(["score", str(sample_clip), "-o", str(existing), "--model", str(tiny_model),
                 "--progress", "none"]) == 2
    assert "output exists" in capsys.readouterr().err
    assert existing.read_bytes() == b"user's file"
    assert main(["score", str(tmp_path / "nope.mp4"), "--midi", str(tmp_path / "o.mid"),
                 "--model", str(tiny_model), "--progress", "none"]) == 2
    assert "nope.mp4" in capsys.readouterr().err


def test_progress_jsonl_for_editors(sample_clip, tiny_model, tmp_path, capsys):
    assert main(["score", str(sample_clip), "--wav", str(tmp_path / "o.wav"), "--model",
                 str(tiny_model), "--progress", "jsonl"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    stages = [e["stage"] for e in events if e["event"] == "progress"]
    assert stages[0] == "analyze" and stages[-1] == "render"
    assert events[-1]["event"] == "done" and events[-1]["wav"] == str(tmp_path / "o.wav")


def test_batch_good_and_broken(sample_clip, tiny_model, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    out = tmp_path / "out"
    code = main(["batch", str(sample_clip), str(broken), "-o", str(out), "--model",
                 str(tiny_model), "--progress", "none"])
    printed = capsys.readouterr().out
    assert code == 1
    assert (out / "bigbuckbunny.mp4").is_file() and (out / "bigbuckbunny.json").is_file()
    assert not (out / "broken.mp4").exists()
    assert "1 scored, 1 failed" in printed and "broken.mp4" in printed


def test_bundled_model_scores_the_sample_clip(sample_clip, rhythm, tmp_path):
    """The model shipped in the package, found without --model, as the README's command uses."""
    from vbgm_core.scorer import DEFAULT_MODEL, model_genres

    assert DEFAULT_MODEL.stat().st_size < 30 * 2**20
    assert set(model_genres()) >= {"pop", "rock"}
    result = score_video(sample_clip, out_wav=tmp_path / "m.wav", rhythm=rhythm, seed=2)
    assert tokens_errors(result.tokens) == []
    assert result.audio.shape == (round(rhythm.duration_s * 44100), 2)
    assert abs(result.audio).max() > 0.05  # it plays
