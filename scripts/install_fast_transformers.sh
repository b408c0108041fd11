#!/usr/bin/env bash
# Install the optional pytorch-fast-transformers backend (`pip install vbgm[fast]` equivalent)
# from a cached wheel, building and caching the wheel on first use.
#
# The package has no prebuilt wheels; its setup.py compiles C++ (and CUDA when it finds nvcc)
# extensions against the installed torch, so it must build without build isolation. We build
# CPU-only: any nvcc is hidden from PATH and CUDA_HOME is unset (a CPU torch cannot load CUDA
# kernels, and a partial CUDA toolkit breaks the build). The first build takes ~16 minutes on
# 2 cores (a line every minute says it is still going); later runs reuse the cached wheel.
#
# Usage: scripts/install_fast_transformers.sh [PYTHON]   (default: python on PATH)
# Cache: $VBGM_WHEEL_CACHE or ~/.cache/vbgm/wheels
set -euo pipefail

PYTHON="${1:-python}"
VERSION="0.4.0"
CACHE="${VBGM_WHEEL_CACHE:-$HOME/.cache/vbgm/wheels}"
mkdir -p "$CACHE"

if "$PYTHON" -c "import fast_transformers.causal_product" 2>/dev/null; then
    echo "pytorch-fast-transformers already installed"
    exit 0
fi

# The wheel is tied to the torch it was compiled against: key the cache on torch's version.
TORCH="$("$PYTHON" -c 'import torch; print(torch.__version__.replace("+", "_"))')"
KEYED="$CACHE/torch-$TORCH"
mkdir -p "$KEYED"
wheel="$(ls "$KEYED"/pytorch_fast_transformers-"$VERSION"-*.whl 2>/dev/null | head -n1 || true)"

if [ -z "$wheel" ]; then
    echo "building pytorch-fast-transformers $VERSION (CPU only; ~16 minutes on 2 cores, once)..."
    clean_path=""
    IFS=: read -ra parts <<< "$PATH"
    for d in "${parts[@]}"; do
        [ -n "$d" ] && [ -x "$d/nvcc" ] && continue
        clean_path="${clean_path:+$clean_path:}$d"
    done
    env -u CUDA_HOME -u CUDA_PATH PATH="$clean_path" \
        "$PYTHON" -m pip wheel --no-build-isolation --no-deps -w "$KEYED" \
        "pytorch-fast-transformers==$VERSION" &
    build=$!
    minutes=0
    while ! timeout 60 tail --pid="$build" -f /dev/null; do
        minutes=$((minutes + 1))
        echo "  still compiling pytorch-fast-transformers ($minutes min)..."
    done
    wait "$build"
    wheel="$(ls "$KEYED"/pytorch_fast_transformers-"$VERSION"-*.whl | head -n1)"
fi

"$PYTHON" -m pip install --no-deps "$wheel"
"$PYTHON" -c "import fast_transformers.causal_product; print('pytorch-fast-transformers OK')"
