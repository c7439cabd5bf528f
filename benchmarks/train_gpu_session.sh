#!/bin/bash
# One device session for benchmarks/train_gpu.py (run from the repository root on a GPU machine,
# eventlib's dependencies importable; OLD: a folder holding an older eventlib/ to compare with).
# Writes to ${OUT:-/tmp/out}. Each stage has its own time limit, so one slow stage costs the others
# nothing but its own time.
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi -L 2>/dev/null | tee "$OUT/log.txt"
timeout 150 python3 benchmarks/train_gpu.py train --epochs 2 --out "$OUT/train_after.json" 2>&1 | tee -a "$OUT/log.txt"
timeout 60 python3 benchmarks/train_gpu.py grads --out "$OUT/grads.json" 2>&1 | tee -a "$OUT/log.txt"
timeout "${LAYERS_S:-150}" python3 benchmarks/train_gpu.py layers --out "$OUT/layers_after.json" > /dev/null 2>>"$OUT/log.txt"
timeout "${NOTEBOOK_S:-120}" python3 tools/gpu_notebooks.py --column gpu --out "$OUT/notebooks_gpu.json" ${NOTEBOOKS:-05_training_a_snn} 2>&1 | tee -a "$OUT/log.txt"
timeout 120 python3 tools/gpu_notebooks.py --column gpu_path_event --default-path event --out "$OUT/notebooks_gpu.json" 05_training_a_snn 2>&1 | tee -a "$OUT/log.txt"
if [ -n "$OLD" ]; then
  PYTHONPATH="$OLD:$PYTHONPATH" timeout "${OLD_S:-200}" python3 benchmarks/train_gpu.py train --paths ${OLD_PATHS:-dense kernel auto event} --epochs 2 --out "$OUT/train_before.json" 2>&1 | tee -a "$OUT/log.txt"
fi
if [ -n "$TEST_S" ]; then
  timeout "$TEST_S" make test-gpu GPU_PYTHON=python3 PYTEST_ARGS="-q -p no:cacheprovider --maxfail=30" > "$OUT/testgpu.log" 2>&1
  echo "test-gpu rc=$?" | tee -a "$OUT/log.txt"; tail -25 "$OUT/testgpu.log"
fi
