import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from tests_support import ROOT
from unified_reward.scoring import Judge
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
