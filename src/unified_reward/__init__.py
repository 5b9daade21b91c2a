"""Unified multimodal reward models: the judge, preference-data construction, and DPO for VLMs and generators."""

from pathlib import Path

from omegaconf import OmegaConf

# `${repo:checkpoints/tiny_qwen2_vl_base}`: a path inside this checkout, wherever a command runs from (the configs
# find the tiny base shipped in checkpoints/ with it, also when paths.root_dir points elsewhere)
OmegaConf.register_new_resolver(
    "repo", lambda relative="": str(Path(__file__).resolve().parents[2] / relative), replace=True
)
