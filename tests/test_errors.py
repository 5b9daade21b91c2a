import pytest
from torch.utils.data import DataLoader, IterableDataset

from unified_reward.errors import UserError, find_user_error, user_message


class _Failing(IterableDataset):
    def __iter__(self):
        raise UserError("shard x.tar: nothing valid; leave the stream out")


def test_a_worker_raised_user_error_keeps_its_type_and_message():
    with pytest.raises(UserError) as caught:
        list(DataLoader(_Failing(), num_workers=1))
    assert "Original Traceback" in str(caught.value)  # torch puts the worker's traceback in the message
    assert user_message(caught.value) == "shard x.tar: nothing valid; leave the stream out"


def test_the_user_error_behind_a_wrapping_error_is_found():
    try:
        try:
            raise UserError("no such local folder")
        except UserError as inner:
            raise RuntimeError("Error in call to target 'build_processor'") from inner
    except RuntimeError as outer:
        assert str(find_user_error(outer)) == "no such local folder"
    assert find_user_error(ValueError("a bug")) is None
