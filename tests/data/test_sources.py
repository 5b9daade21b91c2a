import pytest

from unified_reward.data.sources import ShardFolder
from unified_reward.errors import UserError


def test_a_missing_shard_root_says_what_a_shard_folder_holds(tmp_path):
    with pytest.raises(UserError, match=r"does not exist \(a shard folder holds train/, val/ and test/"):
        ShardFolder(tmp_path / "nothing").prepare()


def test_a_split_without_manifest_names_it_and_what_the_root_holds(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(UserError, match=r"has no val/manifest.json \(it holds: \['train'\]\)"):
        ShardFolder(tmp_path).streams("val")


def test_a_shard_set_lists_its_streams(small_world):
    streams = ShardFolder(small_world).streams("train")
    assert len(streams) == 8 and all(urls for urls in streams.values())
