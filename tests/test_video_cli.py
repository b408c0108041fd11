"""`vbgm analyze` end to end on a synthetic clip: JSON, plot, refusal to overwrite, bad input."""

import json

import cv2
import numpy as np

from vbgm_core.cli import main


def _clip(path, n=50):
    rng = np.random.default_rng(0)
    square = cv2.GaussianBlur(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), (5, 5), 0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (160, 120))
    for i in range(n):
        frame = np.full((120, 160, 3), 80, np.uint8)
        frame[40:80, 10 + 2 * i:50 + 2 * i] = square
        writer.write(frame)
    writer.release()
    return path


def test_analyze_writes_json_and_plot(tmp_path, capsys):
    clip = _clip(tmp_path / "clip.avi")
    out, png = tmp_path / "r.json", tmp_path / "r.png"
    before = clip.read_bytes()
    assert main(["analyze", str(clip), "-o", str(out), "--plot", str(png), "--tempo", "90"]) == 0
    data = json.loads(out.read_text())
    assert data["tempo_bpm"] == 90 and data["n_bars"] == 1 and data["duration_s"] == 2.0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert clip.read_bytes() == before  # the input is never modified
    assert "90 BPM" in capsys.readouterr().out
    # An existing output is kept unless --overwrite.
    assert main(["analyze", str(clip), "-o", str(out)]) == 2
    assert "output exists" in capsys.readouterr().err
    assert main(["analyze", str(clip), "-o", str(out), "--overwrite", "--start", "0.5"]) == 0
    assert json.loads(out.read_text())["duration_s"] == 1.5


def test_analyze_bad_file_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    assert main(["analyze", str(bad), "-o", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("vbgm analyze: error:") and "bad.mp4" in err
    assert not (tmp_path / "r.json").exists()
