"""Candidate-set shards (written by the candidates stage) as the input of a prediction loop (the filter)."""

from __future__ import annotations

import lightning as L
from torch.utils.data import ChainDataset, DataLoader

from unified_reward.data.datamodule import keep_records
from unified_reward.data.reading import ShardStream, SkipCounter
from unified_reward.data.shards import decode_candidate_set
from unified_reward.data.sources import ShardFolder
from unified_reward.errors import UserError


class CandidateSetData(L.LightningDataModule):
    """One pass over every `<task>_candidates` stream of `folder/<split>/`, split across ranks. Media stay encoded
    (the filter decodes them for the judge and writes the stored bytes); bad samples are skipped and counted."""

    def __init__(self, folder: str, split: str = "train", batch_size: int = 8):
        super().__init__()
        self.folder, self.split, self.batch_size = folder, split, batch_size
        self.counter = SkipCounter()

    def predict_dataloader(self) -> DataLoader:
        streams = {k: v for k, v in ShardFolder(self.folder).streams(self.split).items() if k.endswith("_candidates")}
        if not streams:
            raise UserError(
                f"candidates={self.folder}: {self.split}/ holds no candidate-set streams (<task>_candidates); it is "
                "made by `python src/predict.py stage=candidates ... output=<folder>`"
            )
        readers = [
            ShardStream(urls, name=name, sampling=None, decode=decode_candidate_set, counter=self.counter)
            for name, urls in streams.items()
        ]
        return DataLoader(ChainDataset(readers), batch_size=self.batch_size, collate_fn=keep_records)

    def predict_skipped(self) -> dict[str, int]:
        """Bad candidate records met by this process, by reason."""
        return self.counter.as_dict()
