"""Run under torchrun by test_datamodule.py: every rank reads one pass of a split and writes the ids it saw."""

import json
import sys
from pathlib import Path

import torch.distributed as dist

from unified_reward.data.datamodule import PreferenceDataModule
from unified_reward.data.sources import ShardFolder


def main(root: str, split: str, out: str, workers: int, tasks: str, modes: str) -> None:
    dist.init_process_group("gloo")
    datamodule = PreferenceDataModule(
        ShardFolder(root), tasks=tasks.split(","), modes=modes.split(","), batch_size=3, num_workers=workers
    )
    loader = {"val": datamodule.val_dataloader, "test": datamodule.test_dataloader}[split]()
    ids = [record.id for batch in loader for record in batch]
    Path(out, f"rank{dist.get_rank()}.json").write_text(json.dumps(ids))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6])
