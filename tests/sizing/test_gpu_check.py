import os
import subprocess

import pytest

from tests_support import ROOT


@pytest.mark.slow
def test_gpu_check_dry_run_runs_both_cases_on_the_cpu():
    """scripts/gpu_check.sh --dry-run: the GPU script's code (QLoRA 7B-width, bf16 LoRA 3B-width) at 1 layer."""
    import json
    import sys

    result = subprocess.run(
        ["bash", str(ROOT / "scripts/gpu_check.sh"), "--dry-run"],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["case"] for r in rows] == ["qwen2_5_vl_7b QLoRA", "qwen2_5_vl_3b bf16 LoRA"]
    assert all(r["finite"] and r["tokens_per_s"] > 0 and r["estimate_gib"] > 0 for r in rows)


def test_gpu_check_without_a_gpu_says_to_use_the_dry_run(capsys):
    import torch

    from unified_reward.sizing.gpu_check import main

    assert not torch.cuda.is_available()  # the default test run is CPU-only
    with pytest.raises(SystemExit):
        main([])
    assert "--dry-run" in capsys.readouterr().err
