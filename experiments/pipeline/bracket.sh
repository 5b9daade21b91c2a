#!/usr/bin/env bash
# The loop bracketed on one domain: per seed, the policy (SFT'd with a deficit) and its candidate sets are made
# once, by the oracle run, and every judge ranks those same candidates: random (the floor), the single-task judge,
# the joint judge, the oracle (the ceiling). Arguments after the judges are Hydra overrides for every run.
#   DEFICIT=0.3 SEEDS="1 2 3" experiments/pipeline/bracket.sh <domain> <output root> <joint judge export> \
#       [<single judge export or ""> [<override> ...]]
#   python experiments/pipeline/collect.py <output root> --out experiments/pipeline
set -euo pipefail
domain=$1
root=$2
joint=$3
single=${4:-}
extra=("${@:5}")
deficit=${DEFICIT:-0.3}
seeds=${SEEDS:-"1 2 3"}
python=${PYTHON:-python}
# a judge's run on the oracle run's policy and candidates; it may stop on its own (a judge that calls every pair a
# tie leaves DPO nothing), and the other judges and seeds still run
judged() { $python src/pipeline.py "${common[@]}" "${shared[@]}" "$@" || echo "bracket: seed $seed, $1 stopped" >&2; }
for seed in $seeds; do
  base=$root/$domain/seed$seed
  common=(domain="$domain" deficit="$deficit" seed="$seed" "${extra[@]}")
  $python src/pipeline.py "${common[@]}" judge_kind=oracle hydra.run.dir="$base/oracle"
  shared=(policy="$base/oracle/policy/export" candidates="$base/oracle/candidates")
  judged judge_kind=random hydra.run.dir="$base/random"
  judged judge_kind=joint judge="$joint" hydra.run.dir="$base/joint"
  if [ -n "$single" ]; then
    judged judge_kind=single judge="$single" hydra.run.dir="$base/single"
  fi
done
