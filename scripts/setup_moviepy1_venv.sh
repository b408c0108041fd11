#!/usr/bin/env bash
# Create .venv-moviepy1/ (git-ignored) with MoviePy 1.0.3, for tests/test_moviepy1.py (the
# `clip.fx(cmt_soundtrack, ...)` idiom). MoviePy 1 and 2 cannot share the main .venv.
# vbgm's own dependencies are installed by name and vbgm itself with --no-deps, so pip resolves
# nothing twice. Idempotent: does nothing when the venv already has MoviePy 1.0.3 and vbgm.
set -euo pipefail
cd "$(dirname "$0")/.."
MOVIEPY_VERSION=1.0.3
PYTHON=${PYTHON:-python3}
VENV=.venv-moviepy1

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$MOVIEPY_VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata as m
sys.exit(m.version("moviepy") != sys.argv[1] or not m.version("vbgm") or not m.version("pytest"))
PY
then
    echo "$VENV: moviepy $MOVIEPY_VERSION ready"
    exit 0
fi

"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet "moviepy==$MOVIEPY_VERSION" "torch==2.13.0" numpy pyyaml \
    miditoolkit opencv-python-headless pyfluidsynth imageio-ffmpeg safetensors tqdm matplotlib \
    pytest
"$VENV/bin/pip" install --quiet --no-deps -e .
echo "$VENV: moviepy $MOVIEPY_VERSION installed"
