"""The float-sensitive tests pass under other arithmetic than this machine's default.

A user's machine sums in another order than the one the tolerances were written on: another
BLAS (OpenBLAS on AMD, MKL on Intel), another vector unit (AVX-512, AVX2, none) or another
thread count. Each case re-runs the float-sensitive test files in a subprocess with one such
setting, so a tolerance that holds only on this CPU fails here, not on the user's (a fixed
``atol=1e-6`` on a 20-step state failed on an AMD EPYC and fails here under
``MKL_CBWR=COMPATIBLE``; tolerances now come from tests/numerics.py). About a minute in all.
"""

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# torch's float32 maths (linear layers, the recurrent attention state, the fused step).
TORCH_FILES = ["tests/test_model.py"]
# numpy's BLAS (matrix products: the genre classifier, self-similarity metrics) as well.
NUMPY_FILES = TORCH_FILES + ["tests/test_genre_features.py", "tests/test_metrics.py"]

# Variables the cases set, removed first so that each case changes one thing. Not
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE: some machines set them because older OpenBLAS builds
# compute wrong results or crash on their CPU; a machine's own setting is left alone.
KNOBS = ("MKL_CBWR", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
         "OPENBLAS_NUM_THREADS")


def _cpu_flags():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


X86 = platform.machine().lower() in ("x86_64", "amd64")
AVX2 = "avx2" in _cpu_flags()
MKL = torch.backends.mkl.is_available()
OPENBLAS = "openblas" in str(np.show_config(mode="dicts").get("Build Dependencies", {})
                             .get("blas", {}).get("name", "")).lower()

CASES = [
    # MKL's reproducible code paths: the generic (SSE2) one, and the AVX2 one.
    pytest.param({"MKL_CBWR": "COMPATIBLE"}, TORCH_FILES, id="mkl-compatible",
                 marks=pytest.mark.skipif(not MKL, reason="torch is not built with MKL")),
    pytest.param({"MKL_CBWR": "AVX2"}, TORCH_FILES, id="mkl-avx2",
                 marks=pytest.mark.skipif(not (MKL and AVX2), reason="needs MKL and AVX2")),
    # ATen's scalar kernels instead of its AVX2/AVX-512 ones.
    pytest.param({"ATEN_CPU_CAPABILITY": "default"}, TORCH_FILES, id="aten-default"),
    # numpy's OpenBLAS with the Haswell kernels (an AMD EPYC's), not this CPU's own.
    pytest.param({"OPENBLAS_CORETYPE": "Haswell"}, NUMPY_FILES, id="openblas-haswell",
                 marks=pytest.mark.skipif(
                     not (OPENBLAS and X86 and AVX2) or "OPENBLAS_CORETYPE" in os.environ,
                     reason="needs numpy on OpenBLAS, an AVX2 CPU and no OPENBLAS_CORETYPE "
                            "of the machine's own")),
    # One and two threads (the split of a parallel sum changes with them).
    pytest.param({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
                 NUMPY_FILES, id="threads-1"),
    pytest.param({"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"},
                 TORCH_FILES, id="threads-2"),
]


@pytest.mark.parametrize("setting,files", CASES)
def test_float_sensitive_tests_pass_under_other_arithmetic(setting, files):
    # VBGM_REQUIRE_FAST too: the core suite fails on a missing fast backend; here its test
    # runs where it is installed and skips where not, so one failure is reported once.
    env = {k: v for k, v in os.environ.items() if k not in KNOBS + ("VBGM_REQUIRE_FAST",)}
    env.update(setting)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
                            check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(f'{k}={v}' for k, v in setting.items())} python "
                    f"{' '.join(cmd[1:])} failed (exit {result.returncode}):\n"
                    f"{result.stdout[-6000:]}{result.stderr[-2000:]}", pytrace=False)
