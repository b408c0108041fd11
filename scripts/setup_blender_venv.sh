#!/usr/bin/env bash
# Create .venv-blender/ (git-ignored) with Blender as a Python module, for tests/test_blender*.py.
# bpy 5.0.1 needs Python 3.11 and pins numpy<2, so it cannot share the main .venv.
# Idempotent: does nothing when the venv already has the right bpy and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
BPY_VERSION=5.0.1
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
VENV=.venv-blender

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$BPY_VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata as m
sys.exit(m.version("bpy") != sys.argv[1] or not m.version("pytest"))
PY
then
    echo "$VENV: bpy $BPY_VERSION ready"
    exit 0
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || { echo "setup_blender_venv.sh: bpy $BPY_VERSION needs Python 3.11 (set PYTHON=...)" >&2; exit 2; }
"$PYTHON" -m venv "$VENV"
# pytest and the rest at the versions of constraints.txt, less numpy (bpy brings its own < 2).
grep -v -i -E '^numpy==' constraints.txt > "$VENV/constraints-blender.txt"
"$VENV/bin/pip" install --quiet -c "$VENV/constraints-blender.txt" "bpy==$BPY_VERSION" pytest
echo "$VENV: bpy $BPY_VERSION installed"
