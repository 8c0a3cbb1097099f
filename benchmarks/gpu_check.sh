#!/usr/bin/env bash
# The GPU checks, in one run on a machine with CUDA and a Python that has torch (the device tool's machine:
# no network, so the package goes in without its dependencies). Logs go to $OUT (default out/gpu-check):
#   test_cuda.txt   `pytest -m cuda`: every CUDA path against the CPU (tests/test_cuda.py)
#   sampler.txt     the committee sampler on the real subset on CUDA, against the committed CPU run
#   committee.txt   the committee trainers on CUDA against the same-run GEMM bound on that GPU
# STEPS (default "tests sampler committee") picks which run. Logs kept from a run on an H200:
# benchmarks/results/gpu_test_cuda_h200_*.txt, gpu_sampler_h200_*.txt, bench_committee_cuda_h200_*.txt.
set -u
OUT=${OUT:-out/gpu-check}
STEPS=${STEPS:-tests sampler committee}
mkdir -p "$OUT"
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
nvidia-smi -L
$PY -m pip install -q --no-deps --no-build-isolation --no-index -e . 2>&1 | tail -2
$PY -c "import torch, numba; print('torch', torch.__version__, 'numba', numba.__version__, torch.cuda.get_device_name())"
case " $STEPS " in *" tests "*)
  timeout "${TEST_S:-240}" $PY -m pytest -m cuda -q -rs -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/test_cuda.txt";;
esac
case " $STEPS " in *" sampler "*)
  timeout "${BENCH_S:-300}" $PY benchmarks/bench_local_entropy_sampling.py --device cuda \
    --solutions rsgd-fast:0,sgd-slow:0,sgd-fast:0 --json "$OUT/sampling_cuda.json" --plot "$OUT/sampling_cuda.png" \
    --compare benchmarks/results/local_entropy_sampling_vs_bp.json 2>&1 | tee "$OUT/sampler.txt";;
esac
case " $STEPS " in *" committee "*)
  timeout "${COMMITTEE_S:-240}" $PY benchmarks/bench_committee.py --device cuda --gemm-size 4096 --epochs 5 \
    --batches shared --fig-cache '' 2>&1 | tee "$OUT/committee.txt";;
esac
