"""Shared fixtures: where the committed fixtures and the optional ../shared data live."""

import os
import shutil
import sys
import wave
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def fixtures():
    return FIXTURES


@pytest.fixture(scope="session")
def shared():
    """../shared beside the checkout (CI has it; a user's clone may not)."""
    if not (SHARED / "data").is_dir():
        pytest.skip(f"needs the shared data folder {SHARED} (absent in this checkout)")
    return SHARED


def wav_duration_s(path):
    """Duration of a PCM WAV file, from its header."""
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def vbgm_command():
    """The real `vbgm` command: $VBGM_EXECUTABLE, else the checkout's .venv, else the running
    interpreter's or PATH's; skips the test when there is none."""
    candidates = [os.environ.get("VBGM_EXECUTABLE"), ROOT / ".venv" / "bin" / "vbgm",
                  Path(sys.executable).parent / "vbgm", shutil.which("vbgm")]
    for c in candidates:
        if c and Path(c).is_file():
            return str(c)
    pytest.skip("no vbgm command (set $VBGM_EXECUTABLE or create the main .venv)")


SAMPLE_CLIP = ROOT / "examples" / "media" / "bigbuckbunny.mp4"

TINY_CONFIG = """
model:
  n_layers: 2
  n_heads: 2
  d_model: 64
  d_ff: 128
  dropout: {dropout}
  emb_sizes: {{type: 8, beat: 8, density: 8, strength: 8, pitch: 32, duration: 16, instrument: 8}}
  chunk_size: 32
train:
  crop_len: 128
  batch_size: 8
  lr: 3.0e-3
  warmup_steps: 10
  max_steps: {max_steps}
  weight_decay: 0.0
  valid_fraction: 0.0
  eval_every: 1000
  checkpoint_every: {checkpoint_every}
  log_every: {log_every}
"""


def write_tiny_config(path, dropout=0.0, max_steps=120, checkpoint_every=1000, log_every=40):
    """A tiny model's YAML config (trains in seconds on a CPU); returns ``path``."""
    path.write_text(TINY_CONFIG.format(dropout=dropout, max_steps=max_steps,
                                       checkpoint_every=checkpoint_every, log_every=log_every))
    return path


@pytest.fixture(scope="session")
def sample_clip():
    """The bundled CC-BY sample clip (Big Buck Bunny, 5.3 s)."""
    return SAMPLE_CLIP


TINY_SONGS = {"pop": ("pop909_001.mid", "chuggachugga.mid"),
              "rock": ("coconut_run2.mid", "train_filled_with_cash.mid")}


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """The committed fixture songs prepared as a dataset (`vbgm prepare`; genres pop and rock,
    all four songs in the train split). Returns the dataset directory; its MIDI folder is the
    sibling ``midi``."""
    import shutil

    from vbgm_core.training.data import prepare

    root = tmp_path_factory.mktemp("tiny_dataset")
    for genre, names in TINY_SONGS.items():
        (root / "midi" / genre).mkdir(parents=True)
        for name in names:
            shutil.copy(FIXTURES / "midi" / name, root / "midi" / genre / name)
    prepare(root / "midi", root / "data", workers=1)
    return root / "data"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_dataset):
    """A tiny CMT trained for seconds on the committed fixture songs (``tiny_dataset``).

    Its music is weak, but it is a real trained model of the real format: what the scoring
    pipeline, the plugins and `vbgm eval` are tested with, independently of the bundled model.
    """
    from vbgm_core.training.train import train

    root = tmp_path_factory.mktemp("tiny_model")
    result = train(write_tiny_config(root / "tiny.yaml"), tiny_dataset, root / "run", threads=1)
    return result.run_dir / "model.safetensors"


@pytest.fixture(scope="module")
def registered_addon():
    """The Blender add-on registered in real bpy, its vbgm command set (the bpy venv only)."""
    bpy = pytest.importorskip("bpy")
    vbgm = vbgm_command()
    sys.path.insert(0, str(ROOT / "plugins"))
    import blender_vse

    blender_vse.register()
    entry = bpy.context.preferences.addons.new()
    entry.module = "blender_vse"
    entry.preferences.vbgm_path = vbgm
    yield blender_vse
    blender_vse.unregister()
    bpy.context.preferences.addons.remove(entry)
    sys.path.remove(str(ROOT / "plugins"))
    assert not hasattr(bpy.types, "VBGM_OT_reroll_score")   # unregister removed the operators
