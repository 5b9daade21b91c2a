import pytest

from unified_reward.errors import UserError
from unified_reward.models.locate import hub_errors_explained, locate_pretrained


def test_a_checkpoint_folder_is_used_as_a_path(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert locate_pretrained(str(tmp_path)) == str(tmp_path)


@pytest.mark.parametrize("value", ["/no/such/folder", "./judge", "../runs/x/judge", "logs/reward_joint/runs/judge"])
def test_a_missing_path_is_reported_as_a_missing_folder_not_a_hub_id(value):
    with pytest.raises(UserError, match="no such local folder"):
        locate_pretrained(value)


def test_a_folder_without_a_checkpoint_and_a_file_are_refused(tmp_path):
    with pytest.raises(UserError, match="not a Hugging Face checkpoint"):
        locate_pretrained(str(tmp_path))
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(UserError, match="is a file"):
        locate_pretrained(str(tmp_path / "weights.bin"))


def test_a_hub_id_passes_and_its_load_failure_says_it_was_taken_as_one():
    assert locate_pretrained("Qwen/Qwen2-VL-7B-Instruct") == "Qwen/Qwen2-VL-7B-Instruct"
    with pytest.raises(UserError, match="loaded as a hub id"), hub_errors_explained("org/name"):
        raise OSError("offline")
