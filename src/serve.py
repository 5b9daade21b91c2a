"""Serve a judge as a reward: native JSON (`POST /v1/judge`: score, compare, group_rewards; dynamically batched) and
OpenAI chat completions (`POST /v1/chat/completions`), on LitServe.

python src/serve.py judge=logs/reward_joint/runs/<time>/judge
python src/serve.py judge=CodeGoat24/UnifiedReward-qwen-7b judge_family=qwen2_5_vl dtype=bfloat16 accelerator=cuda

Binds to 127.0.0.1 unless `host=` says otherwise; `token=` (or UR_SERVE_TOKEN) requires `Authorization: Bearer`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without `pip install -e .`

log = logging.getLogger("serve")


def serve(cfg: DictConfig) -> None:
    from unified_reward.serving.requests import Limits
    from unified_reward.serving.server import JudgeLoader, build_server

    writes_no_text = (
        cfg.judge == "random" or cfg.judge in cfg.named_judges or (Path(cfg.judge) / "scalar_judge.json").is_file()
    )
    if cfg.chat and writes_no_text:
        from unified_reward.errors import UserError

        raise UserError(f"judge={cfg.judge} writes no text for /v1/chat/completions; add chat=false")
    named = tuple(OmegaConf.to_container(cfg.named_judges).items())
    loader = JudgeLoader(cfg.judge, cfg.judge_family, cfg.templates, cfg.dtype, cfg.batch_size, cfg.seed, named)
    limits = Limits(**OmegaConf.to_container(cfg.limits, resolve=True))
    server = build_server(
        loader,
        limits,
        token=cfg.token,
        chat=cfg.chat,
        chat_max_new_tokens=cfg.chat_max_new_tokens,
        max_batch_size=cfg.max_batch_size,
        batch_timeout=cfg.batch_timeout,
        timeout=cfg.timeout,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        workers_per_device=cfg.workers_per_device,
    )
    log.info(
        "serving %s on http://%s:%d (/v1/judge%s)%s",
        cfg.judge,
        cfg.host,
        cfg.port,
        ", /v1/chat/completions" if cfg.chat else "",
        " with a bearer token" if cfg.token else "",
    )
    server.run(host=cfg.host, port=cfg.port, generate_client_file=False, log_level=cfg.log_level, num_api_servers=1)


@hydra.main(version_base="1.3", config_path="../configs", config_name="serve.yaml")
def main(cfg: DictConfig) -> None:
    from unified_reward.quiet import silence_known_noise
    from unified_reward.runs import run_status

    silence_known_noise()
    with run_status(cfg.paths.output_dir):
        serve(cfg)


if __name__ == "__main__":
    main()
