import torch

from unified_reward.modules.reference import upgrade_copy_keys


def test_checkpoints_with_the_old_copy_keys_load_under_the_new_ones():
    weight = torch.ones(2)
    checkpoint = {"state_dict": {"reference_model.layer.weight": weight, "model.layer.weight": torch.zeros(2)}}
    upgrade_copy_keys(checkpoint, "reference_model.")
    assert set(checkpoint["state_dict"]) == {"reference.copy.layer.weight", "model.layer.weight"}
    assert checkpoint["state_dict"]["reference.copy.layer.weight"] is weight
