"""Unified multimodal reward models: the judge, preference-data construction, and DPO for VLMs and generators."""

from pathlib import Path

from omegaconf import OmegaConf

from unified_reward.budgets import steps_for_examples

# `${repo:checkpoints/tiny_qwen2_vl_base}`: a path inside this checkout, wherever a command runs from (the configs
# find the tiny base shipped in checkpoints/ with it, also when paths.root_dir points elsewhere)
OmegaConf.register_new_resolver(
    "repo", lambda relative="": str(Path(__file__).resolve().parents[2] / relative), replace=True
)
# `${steps_for_examples:1200,${data.batch_size},${data.train_tasks},${data.tasks}}`: configs/budget/same_examples.yaml
OmegaConf.register_new_resolver("steps_for_examples", steps_for_examples, replace=True)
