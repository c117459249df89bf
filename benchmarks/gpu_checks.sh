#!/usr/bin/env bash
# All GPU checks and benchmarks of the performance work (issue 12), about 8 minutes on one H200.
#
#   bash benchmarks/gpu_checks.sh            # from the repository root; results in benchmarks/results/gpu/
#
# 1. the CUDA-only tests (sync debug mode, BatchNorm closed form on cuDNN) and benchmarks/gpu_checks.py
#    (no host sync in a step for every method; exact vs native BatchNorm gradients in fp64 / fp32 / bf16 autocast);
# 2. bench_overhead.py at full sizes (2D 224 B32, 2D 512 B16, 3D 96 B4), fp32 and bf16, plain / naive / native /
#    fused for every method, channels_last, peak memory;
# 3. the fused variant with torch.compile of the closed form (2D 224 fp32, the twice-differentiating methods);
# 4. bench_metrics.py on the GPU.
# Every stage has its own time limit so that the script ends in time even if one stage hangs.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
OUT=${OUT_DIR:-benchmarks/results/gpu}
mkdir -p "$OUT"
status=0
run() {  # run <seconds> <log name> <command...>
  local limit=$1 name=$2
  shift 2
  echo "== $name (limit ${limit}s): $*"
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -ne 0 ] && { echo "!! $name exited with $rc"; status=1; }
  return 0
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"

run 60 tests $PY -m pytest -q -x tests/saliency/test_batchnorm.py tests/saliency/test_host_syncs.py \
  tests/utils/test_checks.py tests/saliency/test_numerics.py -p no:warnings
run 45 gpu_checks $PY benchmarks/gpu_checks.py
run 170 overhead_fp32 $PY benchmarks/bench_overhead.py --device cuda --full --steps 5 --warmup 2 \
  --json "$OUT/overhead_fp32.json" --md "$OUT/overhead_fp32.md"
run 110 overhead_bf16 $PY benchmarks/bench_overhead.py --device cuda --full --amp --steps 5 --warmup 2 --no-memory \
  --json "$OUT/overhead_bf16.json" --md "$OUT/overhead_bf16.md"
run 90 overhead_compiled $PY benchmarks/bench_overhead.py --device cuda --full --config 2d-224 --compile-bn \
  --methods gradcam_mid input_gradient --variants native fused --steps 6 --warmup 3 --no-memory \
  --json "$OUT/overhead_compiled.json" --md "$OUT/overhead_compiled.md"
run 20 metrics $PY benchmarks/bench_metrics.py --device cuda --json "$OUT/metrics_cuda.json"
echo "results in $OUT; exit status $status"
exit $status
