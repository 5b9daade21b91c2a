#!/usr/bin/env bash
# The benchmark of generators' own samples (benchmark=synthetic_generated): per generation domain, a tiny generator
# trained on the world's clean renders (a seed and a stage no reward data came from), then N samples per caption of
# an unseen world's test split, each scored by the oracle reading its pixels; the benchmark pairs samples (0, 1),
# (2, 3), ... of each caption, labelled by those scores.
#   experiments/judge_on_generated/make_benchmark.sh <output root>   (~45 min on 2 free CPU cores: image 15, video 30;
#   the measured video benchmark used TASKS=video_generation CAPTIONS=100)
#   python src/evaluate.py benchmark=synthetic_generated benchmark.root=<output root> judge=<judge export>
set -euo pipefail
root=$1
python=${PYTHON:-python}
seed=${SEED:-7}                # the generators' training seed
world=${WORLD:-100}            # the world whose test captions are sampled (the judges train on world 0)
captions=${CAPTIONS:-200}      # test captions per domain
samples=${SAMPLES:-4}          # samples per caption: samples/2 pairs
steps=${STEPS:-400}            # generator training steps (the pipeline bracket's recipe)
declare -A model=([image_generation]=t2i_unet_tiny [video_generation]=t2v_animatediff_tiny)
declare -A experiment=([image_generation]=diffusion_pretrain_image [video_generation]=diffusion_pretrain_video)
declare -A extra=([image_generation]="sample_steps=20" [video_generation]="sample_steps=10")
for task in ${TASKS:-image_generation video_generation}; do
  run=$root/$task/generator
  if [ ! -f "$run/metrics.json" ]; then
    $python src/train.py experiment="${experiment[$task]}" seed="$seed" trainer.max_steps="$steps" \
      trainer.val_check_interval="$((steps / 2))" +trainer.limit_val_batches=1 +trainer.limit_test_batches=1 \
      module.sample_steps=10 hydra.run.dir="$run" callbacks.export.dirname="$run/export"
  fi
  $python src/predict.py stage=generator_candidates model="${model[$task]}" model.pretrained="$run/export" \
    "data.tasks=[$task]" "data.modes=[pair]" data.source.seed="$world" \
    "data.source.records_per_stream={train: 1, val: 1, test: $captions}" split=test \
    candidates_per_prompt="$samples" ${extra[$task]} seed="$seed" output="$root/$task/samples" \
    hydra.run.dir="$root/$task/logs"
done
