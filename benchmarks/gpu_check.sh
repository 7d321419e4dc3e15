#!/usr/bin/env bash
# One prepared GPU session (issue: performance): the GPU benchmarks and the GPU tests.
# Run on the device machine from the repository root; results go to ${OUT:-gpu_out}/.
#   bash benchmarks/gpu_check.sh
set -uo pipefail
out="${OUT:-gpu_out}"
mkdir -p "$out"
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
} > "$out/env.txt" 2>&1
python benchmarks/gpu_benchmark.py > "$out/gpu_benchmark.txt" 2>&1
echo "gpu_benchmark exit $?" >> "$out/env.txt"
python -m pytest -q tests/gpu -p no:cacheprovider > "$out/gpu_tests.txt" 2>&1
echo "gpu_tests exit $?" >> "$out/env.txt"
cat "$out/env.txt" "$out/gpu_benchmark.txt" "$out/gpu_tests.txt"
