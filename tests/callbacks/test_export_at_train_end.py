import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from unified_reward.callbacks.export import ExportAtTrainEnd
from unified_reward.errors import UserError


class _Exporting(L.LightningModule):
    default_export_dir = "thing"

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.calls: list = []

    def training_step(self, batch, batch_idx):
        return self.layer(batch).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def export(self, path):
        self.calls.append((path, self.trainer.is_global_zero))
        path.mkdir(parents=True)
        torch.save(self.layer.state_dict(), path / "weights.pt")


def _fit(module, callback, root):
    trainer = L.Trainer(
        max_steps=2,
        default_root_dir=root,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(torch.randn(4, 2), batch_size=2))


@pytest.mark.parametrize("dirname", [None, "elsewhere", "ABSOLUTE"])
def test_export_writes_the_trained_weights_where_configured(tmp_path, dirname):
    if dirname == "ABSOLUTE":
        dirname = str(tmp_path / "models" / "mine")
    module = _Exporting()
    _fit(module, ExportAtTrainEnd(dirname), tmp_path / "run")
    expected = {None: tmp_path / "run" / "thing", "elsewhere": tmp_path / "run" / "elsewhere"}.get(dirname)
    expected = expected or tmp_path / "models" / "mine"
    assert module.calls == [(expected, True)]
    written = torch.load(expected / "weights.pt")
    assert torch.equal(written["weight"], module.layer.weight.detach())  # after training, not before


def test_a_module_without_export_is_named(tmp_path):
    class _Plain(_Exporting):
        export = None

    with pytest.raises(UserError, match="_Plain has no export"):
        _fit(_Plain(), ExportAtTrainEnd(), tmp_path)
