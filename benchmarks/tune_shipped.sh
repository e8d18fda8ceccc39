#!/usr/bin/env bash
# Tune the shipped grids: every data-prediction network × named variant × NFE {3,4,5,6,8,10}.
# Calibration: 8 random 32² crops of the training photos (seed 0); held-out check: the 64²
# centre crops of the held-out photos. Usage: benchmarks/tune_shipped.sh [VARIANT ...]
set -euo pipefail
cd "$(dirname "$0")/.."
MRS=${MRS:-.venv/bin/mrs-numerics}
variants=("$@")
[ ${#variants[@]} -eq 0 ] && variants=(ms3 unic2)
for model in denoise-data blur-data lowlight-data; do
  for variant in "${variants[@]}"; do
    "$MRS" tune --model "$model" --variant "$variant" --nfe 3,4,5,6,8,10 \
      --crops 8 --crop 32 --heldout-crop 64 --seed 0 --no-progress \
      --out "mrs_numerics/models/weights/$model.grids.json" --merge
  done
done
