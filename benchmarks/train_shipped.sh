#!/usr/bin/env bash
# Trains the shipped networks (one process per network, in parallel on one GPU) and exports
# each into $OUT/<name>/ (weights + index entry). The exact command of each network is recorded
# in its index entry. Run from the repository root: OUT=dir ITERATIONS=6000 bash benchmarks/train_shipped.sh
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
ITERATIONS=${ITERATIONS:-6000}
DEVICE=${DEVICE:-cuda}
pids=()
for spec in "denoise data" "denoise noise" "lowlight data" "jpeg data"; do
  set -- $spec
  name="$1-$2"
  python3 -m mrs_numerics train --task "$1" --prediction "$2" --iterations "$ITERATIONS" \
    --batch 32 --crop 64 --seed 0 --device "$DEVICE" --work /tmp/runs \
    --export "$name" --export-dir "$OUT/$name" --no-progress > "/tmp/$name.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
for spec in denoise-data denoise-noise lowlight-data jpeg-data; do
  echo "== $spec"; grep -v Warning "/tmp/$spec.log" | tail -4
done
