import numpy as np
import pytest

from unified_reward.callbacks.generator_samples import GeneratorSampleLogger, sample_grid


def test_images_go_side_by_side_and_videos_one_row_of_frames_per_caption():
    images = [np.full((4, 5, 3), i, np.uint8) for i in range(3)]
    assert sample_grid(images).shape == (4, 15, 3)
    videos = [np.full((6, 4, 5, 3), i, np.uint8) for i in range(2)]
    grid = sample_grid(videos)
    assert grid.shape == (8, 30, 3)
    assert grid[5, 0, 0] == 1 and grid[0, 29, 0] == 0  # second video in the second row


def test_logger_needs_captions():
    with pytest.raises(ValueError, match="at least one caption"):
        GeneratorSampleLogger(captions=[])
