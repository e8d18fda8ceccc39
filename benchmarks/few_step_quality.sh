#!/usr/bin/env bash
# The few-step targets: `benchmark quality` on held-out 64² crops (3 seeds), the named variants
# on their shipped tuned grids and on the uniform-λ grid at NFE 3–20, the strided baselines to
# 100; the PF-ODE reference takes 400 steps of mrs-ode-3-data (its accuracy is in the JSON).
# Writes benchmarks/results/few_step_quality_MODEL.{md,json,png} and _grid.png.
# Usage: benchmarks/few_step_quality.sh [MODEL ...]   (about 15 min per network on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
MRS=${MRS:-.venv/bin/mrs-numerics}
models=("$@")
[ ${#models[@]} -eq 0 ] && models=(denoise-data blur-data lowlight-data)
samplers=ms3@tuned,ms3@lambda,unic2@tuned,unic2@lambda,mrs-ode-2-data,euler-ode,heun-ode
for model in "${models[@]}"; do
  out=$(mktemp -d)
  "$MRS" benchmark quality --model "$model" --samplers "$samplers" \
    --nfe 3,4,5,6,8,10,15,20,50,100 --seeds 3 --crop 64 --reference-steps 400 --no-progress \
    --out "$out" --json "benchmarks/results/few_step_quality_$model.json" \
    > "benchmarks/results/few_step_quality_$model.md"
  cp "$out/quality.png" "benchmarks/results/few_step_quality_$model.png"
  cp "$out/grid.png" "benchmarks/results/few_step_quality_${model}_grid.png"
done
