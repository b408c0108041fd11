#!/usr/bin/env bash
# Set up vbgm in this checkout: the system libraries the renderer needs, then .venv with vbgm
# and its timeline extra (editors' timelines), at the versions of constraints.txt (pyproject.toml
# has the ranges; the tests ran with these). --dev adds the test tools and the ray extra.
# Idempotent and quick when everything is there. Usage: scripts/setup.sh [--dev]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# System: FluidSynth (synthesizer, with a General MIDI SoundFont) and ffmpeg (muxing, probing).
missing=()
ldconfig -p 2>/dev/null | grep -q libfluidsynth.so.3 || missing+=(libfluidsynth3)
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
# A full General MIDI SoundFont (FluidR3_GM, 141 MB): far better than the 6 MB TimGM6mb that
# comes with libfluidsynth3, which render.py keeps as the fallback (docs/MUSIC.md).
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || [ -f /usr/share/sounds/sf3/MuseScore_General.sf3 ] \
    || missing+=(fluid-soundfont-gm)
# Python's venv module (Debian splits it out), and for `--dev` (the tests build the optional
# fast-transformers backend from source) a C++ compiler and Python's headers.
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ "${1:-}" = "--dev" ]; then
    command -v g++ >/dev/null || missing+=(g++)
    "$PYTHON" -c 'import os, sysconfig; assert os.path.exists(sysconfig.get_paths()["include"] + "/Python.h")' \
        2>/dev/null || missing+=(python3-dev)
fi
if [ ${#missing[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null; then
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
        echo "setup: installing ${missing[*]} with apt-get"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        echo "setup: please install ${missing[*]} with your package manager" >&2
        exit 2
    fi
fi

# Python: a venv with the CPU build of torch, pinned in constraints.txt (pyproject.toml has a
# range, which on an empty venv would pull the newest torch: a CUDA build of several GB).
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
extras="[timeline]"
[ "${1:-}" = "--dev" ] && extras="[dev,ray,timeline]"   # ray: the tests of `vbgm batch --engine ray`
stamp=".venv/.vbgm-installed$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    # The torch pin resolves to a CUDA build (GBs of nvidia packages) on a plain PyPI set-up;
    # $VBGM_TORCH_INDEX names a CPU wheel index (PyTorch's "CPU" index from its install page)
    # to take torch from first. Machines whose pip configuration already serves the CPU build
    # need nothing.
    torch_pin=$(grep -m1 '^torch==' constraints.txt)
    if [ -n "${VBGM_TORCH_INDEX:-}" ] && ! .venv/bin/python - "${torch_pin#torch==}" <<'PY' 2>/dev/null
import sys, torch
sys.exit(torch.__version__.split("+")[0] != sys.argv[1])
PY
    then
        .venv/bin/pip install --quiet --disable-pip-version-check \
            --index-url "$VBGM_TORCH_INDEX" "$torch_pin"
    fi
    .venv/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".$extras"
    touch "$stamp"
fi
.venv/bin/python - <<'PY'
import torch
build = "CPU build" if torch.version.cuda is None else f"CUDA {torch.version.cuda} build"
print(f"setup: .venv ready (torch {torch.__version__}, {build})")
if torch.version.cuda is not None:
    print("setup: note: this torch is a CUDA build (large download; vbgm runs on the CPU). For "
          "the CPU build, set VBGM_TORCH_INDEX to PyTorch's CPU wheel index and re-create .venv.")
PY
