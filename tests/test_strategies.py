import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from tests_support import ROOT
from unified_reward.judging.generative import Judge
from unified_reward.strategies import check_compatibility


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_reward_sft_with_two_cpu_processes(strategy, tmp_path):
    """A few steps of reward SFT, validation, test (with generation) and export under ddp and under
    fsdp (FSDP2 through ModelParallelStrategy on CPU), 2 processes with gloo."""
    out = tmp_path / "run"
    command = [
        sys.executable,
        str(ROOT / "src" / "train.py"),
        "experiment=reward_joint",
        "debug=fast",
        f"strategy={strategy}",
        "trainer.devices=2",
        f"paths.root_dir={tmp_path}",
        f"paths.output_dir={out}",
    ]
    result = subprocess.run(
        command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["test/loss"] > 0 and "test/acc/mean" in metrics
    judge = Judge.from_pretrained(out / "judge")  # the export gathers sharded weights into plain transformers
    assert sum(p.numel() for p in judge.model.parameters()) > 0


def test_incompatible_choices_fail_at_start_with_advice():
    fsdp = OmegaConf.create(
        {
            "strategy": {"_target_": "unified_reward.strategies.fsdp_strategy"},
            "plugins": [{"_target_": "lightning.pytorch.plugins.BitsandbytesPrecision"}],
        }
    )
    with pytest.raises(ValueError, match="model=<name>_qlora"):
        check_compatibility(fsdp, {})
    qlora = OmegaConf.create({"backbone": {"finetune": "qlora", "quant_storage": None}})
    with pytest.raises(ValueError, match="quant_storage=bfloat16"):
        check_compatibility(OmegaConf.create({"strategy": "fsdp"}), qlora)
    check_compatibility(OmegaConf.create({"strategy": "ddp"}), qlora)  # fine without FSDP


def _real_width_step(rank: int, world_size: int, port: int, out: str) -> None:
    """One reward-SFT step of a real-width 2-layer Qwen2.5-VL (3B widths and vocabulary; 2 vision blocks),
    sharded with FSDP2 over `world_size` gloo processes when it is above 1, then the export's gather."""
    import torch
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh

    from unified_reward.models.architectures import vlm_architecture
    from unified_reward.models.builders import build_vlm_from_architecture
    from unified_reward.modules.reward_sft import judge_sft_loss
    from unified_reward.sizing.measure import _vlm_inputs
    from unified_reward.strategies import shard_with_fsdp2

    torch.set_num_threads(1)
    if world_size > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world_size)
    torch.manual_seed(0)
    options = dict(decoder_layers=2, vision_depth=2, dtype="float32")
    model = build_vlm_from_architecture("qwen2_5_vl_3b", **options)
    batch = _vlm_inputs(vlm_architecture("qwen2_5_vl_3b"), rows=1, tokens=48, visual_tokens=16, answer_tokens=8)
    batch["pixel_values"] = torch.randn(64, 3 * 2 * 14 * 14, generator=torch.Generator().manual_seed(1))
    if world_size > 1:
        shard_with_fsdp2(model, init_device_mesh("cpu", (world_size,)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = judge_sft_loss(model, batch)
    loss.backward()
    optimizer.step()
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:
        torch.save({"loss": loss.detach(), "state": state}, out)
    if world_size > 1:
        dist.destroy_process_group()


@pytest.mark.slow
def test_fsdp_at_real_width_equals_one_process(tmp_path):
    """Sharded over two processes, the step's loss and the exported weights are the single process's."""
    import torch
    import torch.multiprocessing as mp

    single, sharded = tmp_path / "single.pt", tmp_path / "sharded.pt"
    _real_width_step(0, 1, 0, str(single))
    mp.spawn(_real_width_step, args=(2, 29517, str(sharded)), nprocs=2, join=True)
    one, two = torch.load(single), torch.load(sharded)
    assert two["loss"].item() == pytest.approx(one["loss"].item(), rel=1e-5)
    assert one["state"].keys() == two["state"].keys()
    assert (
        sum(v.numel() for v in one["state"].values()) > 450_000_000
    )  # real widths: 2048 hidden, 11008 MLP, 151,936 tokens
    for name, weight in one["state"].items():
        torch.testing.assert_close(two["state"][name], weight, rtol=1e-4, atol=1e-5, msg=name)
