#!/usr/bin/env bash
# Set up vbgm in this checkout: the system libraries the renderer needs, then .venv with vbgm.
# Idempotent and quick when everything is there. Usage: scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# System: FluidSynth (synthesizer, with a General MIDI SoundFont) and ffmpeg (muxing, probing).
missing=()
ldconfig -p 2>/dev/null | grep -q libfluidsynth.so.3 || missing+=(libfluidsynth3)
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
if [ ${#missing[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null; then
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
        echo "setup: installing ${missing[*]} with apt-get"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        echo "setup: please install ${missing[*]} (FluidSynth 2 and ffmpeg) with your package manager" >&2
        exit 2
    fi
fi

# Python: a venv with the CPU build of torch (pinned in pyproject: a bare 'torch' pulls CUDA).
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
stamp=".venv/.vbgm-installed$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install --quiet --disable-pip-version-check -e ".$extras"
    touch "$stamp"
fi
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
