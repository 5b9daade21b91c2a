#!/usr/bin/env bash
# Online GRPO against the offline pipeline at the same number of judge calls, on the bracket's own policies.
# Per seed, the policy and the offline judge-call count are those of the offline oracle run (experiments/pipeline/
# bracket.sh's, or src/pipeline.py's with policy=): the policy its DPO started from, and its filter's train-split
# pair + point judgments; every GRPO run stops when it has asked the judge as often.
#   DEFICIT=0.3 SEEDS="1 2 3" experiments/pipeline/bracket.sh image_understanding <offline root> <joint judge>
#   SEEDS="1 2 3" RUNS="random:win_rate oracle:win_rate oracle:score joint:win_rate" \
#       experiments/grpo/compare.sh <offline root> <grpo root> <joint judge export> [<override> ...]
#   python experiments/grpo/collect.py <offline root> <grpo root> --out experiments/grpo
set -euo pipefail
offline=$1
root=$2
joint=$3
extra=("${@:4}")
seeds=${SEEDS:-"1 2 3"}
runs=${RUNS:-"random:win_rate oracle:win_rate oracle:score joint:win_rate joint:score"}
python=${PYTHON:-python}
batch=${BATCH:-16}  # questions per GRPO step
group=${GROUP:-4}  # answers per question
for seed in $seeds; do
  base=$offline/image_understanding/seed$seed/oracle
  calls=$($python -c "import json,sys; t=json.load(open(sys.argv[1]))['totals']; print(t['pair_judgments']+t['point_judgments'])" "$base/filter/train/summary.json")
  policy=$($python -c "import json,sys; print(json.load(open(sys.argv[1]))['policy'])" "$base/pipeline.json")  # the one DPO started from
  for run in $runs; do
    kind=${run%%:*}
    reward=${run##*:}
    spec=$kind
    [ "$kind" = joint ] && spec=$joint
    if [ "$reward" = score ]; then per_group=$group; else per_group=$((group * (group - 1))); fi  # both orders
    steps=$((calls / (batch * per_group)))
    $python src/train.py experiment=vlm_grpo_image seed="$seed" judge="$spec" module.reward="$reward" \
      module.group_size="$group" data.batch_size="$batch" trainer.max_steps="$steps" \
      model.pretrained="$policy" hydra.run.dir="$root/seed$seed/$kind-$reward" \
      skip_completed=true "${extra[@]}" || echo "compare: seed $seed, $run stopped" >&2
  done
done
