import lightning as L
import torch

from unified_reward.callbacks.progress_log import batch_size_of, clock


def test_clock():
    assert [clock(s) for s in (0, 12.4, 185, 3723)] == ["0s", "12s", "3m05s", "1h02m03s"]


def test_batch_size_of_the_batches_our_collators_make():
    assert batch_size_of([1, 2, 3]) == 3
    assert batch_size_of({"records": [1, 2], "input_ids": torch.zeros(5, 3)}) == 2
    assert batch_size_of({"input_ids": torch.zeros(4, 7)}) == 4
    assert batch_size_of({"scalar": 1}) is None


class _Regression(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)

    def training_step(self, batch, batch_idx):
        return torch.nn.functional.mse_loss(self.layer(batch["x"]), batch["y"])

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", torch.nn.functional.mse_loss(self.layer(batch["x"]), batch["y"]))

    def predict_step(self, batch, batch_idx):
        return self.layer(batch["x"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_every_stage_and_every_step_is_logged(caplog):
    import logging

    from torch.utils.data import DataLoader

    from unified_reward.callbacks.progress_log import ProgressLog

    data = [{"x": torch.randn(3), "y": torch.randn(1)} for _ in range(8)]
    loader = DataLoader(data, batch_size=2)
    trainer = L.Trainer(
        max_steps=4,
        val_check_interval=2,
        limit_val_batches=1,
        callbacks=[ProgressLog(every_n_seconds=0)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with caplog.at_level(logging.INFO, logger="progress"):
        trainer.fit(_Regression(), loader, loader)
        trainer.predict(trainer.lightning_module, loader)
    lines = [r.getMessage() for r in caplog.records if r.name == "progress"]
    assert lines[0].startswith("fit: _Regression, 0.00 M parameters") and "step 0 of 4" in lines[0]
    steps = [line for line in lines if line.startswith("step ")]
    assert [s.split(" · ")[0] for s in steps] == ["step 1/4", "step 2/4", "step 3/4", "step 4/4"]
    assert all("loss" in s and "samples/s" in s and "ETA" in s for s in steps)
    assert sum(line.startswith("validation: done") and "val/loss" in line for line in lines) == 2
    assert any(line.startswith("fit: done at step 4") for line in lines)
    assert any(line.startswith("prediction: 8 items") for line in lines)
