import numpy as np
import pytest
import torch

from unified_reward.generation.noise import NoiseObjective
from unified_reward.generation.sampling import sample, to_uint8
from unified_reward.models.conditioning import build_caption_encoder
from unified_reward.models.diffusion import build_denoiser
from unified_reward.synthetic.vocabulary import world_vocabulary


@pytest.mark.parametrize("kind, prediction", [("unet2d", "epsilon"), ("sd3", "flow")])
def test_each_sample_depends_only_on_its_caption_and_seed(kind, prediction):
    torch.manual_seed(0)
    model, encoder = build_denoiser(kind, sample_size=16), build_caption_encoder(tiny_vocabulary=world_vocabulary())
    objective = NoiseObjective(prediction, clip_sample=prediction != "flow")
    captions = ["a red circle", "two blue squares", "a red circle"]
    batch = sample(model, encoder, captions, objective, shape=(3, 16, 16), seeds=[1, 2, 3], steps=3, guidance_scale=2.0)
    alone = sample(model, encoder, captions[1:2], objective, shape=(3, 16, 16), seeds=[2], steps=3, guidance_scale=2.0)
    # float sums in another batch shape differ in the last bits: 5e-5 on samples of unit scale
    torch.testing.assert_close(batch[1:2], alone, atol=5e-5, rtol=1e-4)
    assert not torch.allclose(batch[0], batch[2])  # same caption, other seed
    assert model.training  # restored


def test_to_uint8_gives_images_and_videos_channels_last():
    images = to_uint8(torch.tensor([-1.0, 0.0, 1.0]).reshape(1, 3, 1, 1).expand(2, 3, 4, 4))
    assert images[0].shape == (4, 4, 3) and images[0].dtype == np.uint8
    assert images[0][0, 0].tolist() == [0, 128, 255]
    videos = to_uint8(torch.zeros(1, 3, 5, 4, 4))
    assert videos[0].shape == (5, 4, 4, 3)


def test_sampling_needs_one_seed_per_caption():
    model, encoder = build_denoiser("sd3", sample_size=16), build_caption_encoder(tiny_vocabulary=world_vocabulary())
    with pytest.raises(ValueError, match="one seed per caption"):
        sample(model, encoder, ["a", "b"], NoiseObjective("flow"), shape=(3, 16, 16), seeds=[1])
