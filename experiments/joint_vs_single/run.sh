#!/usr/bin/env bash
# bash experiments/joint_vs_single/run.sh [runs folder, default logs/joint_vs_single]
# The joint-vs-single ablation: 7 arms x 5 seeds at the same examples per task, the 4 single-task arms x 5 seeds at
# the same compute, then the tables and plots. Rerun it after a kill: completed runs are skipped (skip_completed).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python}
runs=${1:-logs/joint_vs_single}
singles=reward_image_generation,reward_image_understanding,reward_video_generation,reward_video_understanding
seeds=${SEEDS:-0,1,2,3,4}

# seed outermost: a run stopped part way leaves whole seeds behind it
"$PYTHON" src/train.py -m hydra.sweep.dir="$runs/same_examples" budget=same_examples seed="$seeds" \
  experiment=reward_joint,$singles,reward_image_only,reward_video_only
"$PYTHON" src/train.py -m hydra.sweep.dir="$runs/same_compute" budget=same_compute seed="$seeds" experiment=$singles
"$PYTHON" experiments/joint_vs_single/collect.py "$runs" --out experiments/joint_vs_single
