#!/usr/bin/env bash
# Create .venv-moviepy1/ (git-ignored) with MoviePy 1.0.3, for tests/test_moviepy1.py (the
# `clip.fx(cmt_soundtrack, ...)` idiom). MoviePy 1 and 2 cannot share the main .venv.
# vbgm's dependencies come from pyproject.toml (one list), at the versions of constraints.txt
# less MoviePy 2 and its decorator 5 (MoviePy 1.0.3 needs decorator < 5): MoviePy 1 and that
# decorator are pinned beside them.
# Idempotent: does nothing when the venv already has MoviePy 1.0.3 and vbgm.
set -euo pipefail
cd "$(dirname "$0")/.."
MOVIEPY_VERSION=1.0.3
PYTHON=${PYTHON:-python3}
VENV=.venv-moviepy1

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$MOVIEPY_VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata as m
sys.exit(m.version("moviepy") != sys.argv[1] or not m.version("vbgm") or not m.version("pytest")
         or not m.version("silero-vad") or not m.version("pedalboard")
         or not m.version("pyloudnorm"))
PY
then
    echo "$VENV: moviepy $MOVIEPY_VERSION ready"
    exit 0
fi

"$PYTHON" -m venv "$VENV"
# vbgm with its own dependencies (pyproject.toml, one list), then MoviePy 1 and pytest.
grep -v -i -E '^(moviepy|decorator)==' constraints.txt > "$VENV/constraints-moviepy1.txt"
echo "decorator==4.4.2" >> "$VENV/constraints-moviepy1.txt"
"$VENV/bin/pip" install --quiet -c "$VENV/constraints-moviepy1.txt" -e . "moviepy==$MOVIEPY_VERSION" pytest
echo "$VENV: moviepy $MOVIEPY_VERSION installed"
