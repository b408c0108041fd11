"""save_figure: every plot is written whole or not at all, and its figure is always closed."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from vbgm_core.figures import save_figure  # noqa: E402


def test_save_figure_writes_the_image_and_closes_the_figure(tmp_path):
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [1, 0])
    path = tmp_path / "plot.png"
    assert save_figure(fig, path, dpi=50) == path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]  # no temporary left


def test_a_failed_save_closes_the_figure_and_leaves_nothing(tmp_path):
    fig, _ = plt.subplots(figsize=(2, 1))
    path = tmp_path / "plot.png"
    path.write_bytes(b"the user's image")
    with pytest.raises(ValueError):
        save_figure(fig, path, format="no-such-format")
    assert not plt.fignum_exists(fig.number)
    assert path.read_bytes() == b"the user's image"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]
