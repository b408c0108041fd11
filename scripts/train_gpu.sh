#!/usr/bin/env bash
# Train the CMT on one CUDA GPU inside a time limit (issue 24); docs/TRAINING.md "Training on a GPU".
#
# On the CPU machine (the prepared dataset is 140 MB; packed, 12.7 MiB, it travels with the repo):
#   scripts/train_gpu.sh pack data/midi_genre data/gpu_pack
# On the GPU machine (its python3 with CUDA torch; no miditoolkit needed):
#   scripts/train_gpu.sh train --data data/gpu_pack -o /tmp/gpu_run --max-minutes 9 --export "$OUT" \
#       [--config gpu_10min] [--init-from W.safetensors] [--device auto|cuda|cpu]
# Without a GPU the same run happens on the CPU (--device auto). Python: $PYTHON, else the
# repository's .venv, else python3. Everything else: scripts/train_gpu.py --help.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
exec "$PYTHON" "$ROOT/scripts/train_gpu.py" "$@"
