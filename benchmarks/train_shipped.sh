#!/usr/bin/env bash
# Trains the shipped networks, one process per network, in parallel on one device, and writes
# them into $OUT/ship/ (weights + one merged index.json) and their logs into $OUT/train.log.
# The exact command of each network is recorded in its index entry.
#
#   OUT=dir ITERATIONS=8000 bash benchmarks/train_shipped.sh
#
# ITERATIONS=auto first times PROBE_STEPS steps of all networks at once (thrown away) and picks
# the largest multiple of ROUND (500) iterations that fits in BUDGET_S seconds of training.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
ITERATIONS=${ITERATIONS:-6000}
DEVICE=${DEVICE:-cuda}
BUDGET_S=${BUDGET_S:-420}
PROBE_STEPS=${PROBE_STEPS:-150}
ROUND=${ROUND:-500}
NETWORKS=${NETWORKS:-"denoise:data denoise:noise lowlight:data blur:data jpeg:data"}
TIME_SCALE=${TIME_SCALE:-10}
COMMON="--batch 32 --crop 64 --seed 0 --device $DEVICE --no-progress"

network() {  # network SPEC: "task:prediction[:time_scale]" -> "task prediction scale name"
  IFS=: read -r task prediction scale <<< "$1"
  name="$task-$prediction${scale:+-ts$scale}"
  echo "$task $prediction ${scale:-$TIME_SCALE} $name"
}

launch() {  # launch ITERS EXTRA... : one background process per network
  local iters=$1; shift
  pids=()
  for spec in $NETWORKS; do
    read -r task prediction scale name <<< "$(network "$spec")"
    python3 -m mrs_numerics train --task "$task" --prediction "$prediction" \
      --iterations "$iters" --time-scale "$scale" $COMMON "$@" --work "/tmp/runs-$iters/$name" \
      --export "$name" --export-dir "/tmp/ship-$iters/$name" > "/tmp/$name-$iters.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
}

if [ "$ITERATIONS" = auto ]; then
  launch 100000 --stop-after "$PROBE_STEPS"
  # training-loop seconds of the slowest network (process start-up and evaluation excluded)
  probe=$(python3 -c "import json, glob; print(max(json.load(open(f))['seconds'] for f in glob.glob('/tmp/runs-100000/*/*/facts.json')))")
  ITERATIONS=$(python3 -c "print(max($ROUND, int($BUDGET_S / ($probe / $PROBE_STEPS)) // $ROUND * $ROUND))")
  echo "probe: $PROBE_STEPS steps of every network at once in $probe s -> $ITERATIONS iterations"
fi
launch "$ITERATIONS"
mkdir -p "$OUT/ship"
python3 - "$ITERATIONS" "$OUT/ship" <<'PY'
import json, shutil, sys
from pathlib import Path
merged, out = {}, Path(sys.argv[2])
for folder in sorted(Path(f"/tmp/ship-{sys.argv[1]}").iterdir()):
    index = json.loads((folder / "index.json").read_text())
    for name, entry in index.items():
        shutil.copy(folder / entry["weights"], out / entry["weights"])
        merged[name] = entry
(out / "index.json").write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
PY
for spec in $NETWORKS; do
  read -r _ _ _ name <<< "$(network "$spec")"
  echo "== $name"; grep -v Warning "/tmp/$name-$ITERATIONS.log" | tail -5
done | tee "$OUT/train.log"
