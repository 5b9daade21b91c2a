import pytest
import torch

from unified_reward.models.adapters import adapters_disabled, has_adapter
from unified_reward.models.conditioning import build_caption_encoder, build_latent_codec
from unified_reward.models.diffusion import DENOISER_KINDS, build_denoiser, denoiser_kind, predict
from unified_reward.modules.diffusion_dpo import save_denoiser
from unified_reward.synthetic.vocabulary import world_vocabulary


def _input(kind: str, batch: int = 2, size: int = 16):
    if kind in ("unet3d", "animatediff"):
        return torch.randn(batch, 3, 4, size, size)
    return torch.randn(batch, 3, size, size)


@pytest.fixture(scope="module")
def captions():
    return build_caption_encoder(tiny_vocabulary=world_vocabulary())(["two red circles on the left", "a blue square"])


@pytest.mark.parametrize("kind", DENOISER_KINDS)
def test_each_kind_predicts_the_shape_of_its_input(kind, captions):
    model = build_denoiser(kind, sample_size=16)
    assert denoiser_kind(model) == kind
    x = _input(kind)
    assert predict(model, x, torch.tensor([3, 700]), captions).shape == x.shape


@pytest.mark.parametrize("kind", DENOISER_KINDS)
def test_lora_trains_only_the_adapter_and_disabling_it_gives_the_base_model(kind, captions):
    torch.manual_seed(0)
    base = build_denoiser(kind, sample_size=16)
    torch.manual_seed(0)
    model = build_denoiser(kind, sample_size=16, finetune="lora", lora_rank=4)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    with torch.no_grad():  # make the adapter matter (its B matrices start at zero)
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    x, t = _input(kind), torch.tensor([3, 700])
    with torch.no_grad():
        adapted = predict(model, x, t, captions)
        with adapters_disabled(model):
            reference = predict(model, x, t, captions)
        expected = predict(base, x, t, captions)
    torch.testing.assert_close(reference, expected)
    assert not torch.allclose(adapted, expected)
    assert has_adapter(model) and not has_adapter(base)


def test_export_merges_lora_and_loads_back_as_pretrained(tmp_path, captions):
    model = build_denoiser("unet2d", sample_size=16, finetune="lora", lora_rank=4)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    save_denoiser(model, tmp_path / "generator")
    loaded = build_denoiser("unet2d", pretrained=str(tmp_path / "generator"))
    x, t = _input("unet2d"), torch.tensor([3, 700])
    with torch.no_grad():
        torch.testing.assert_close(
            predict(loaded, x, t, captions), predict(model, x, t, captions), atol=1e-5, rtol=1e-4
        )


def test_a_missing_local_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="experiment=diffusion_pretrain_image"):
        build_denoiser("unet2d", pretrained=str(tmp_path / "nothing"))


def test_tiny_caption_encoder_is_the_same_in_every_run_and_caches():
    torch.manual_seed(1)
    first = build_caption_encoder(cache_size=8, tiny_vocabulary=world_vocabulary())
    torch.manual_seed(2)
    second = build_caption_encoder(cache_size=8, tiny_vocabulary=world_vocabulary())
    a, b = first(["a red circle", "a blue square"]), second(["a red circle", "a blue square"])
    torch.testing.assert_close(a.hidden, b.hidden)
    again = first(["a blue square", "a red circle"])
    torch.testing.assert_close(again.pooled, a.pooled.flip(0))
    assert not torch.allclose(a.pooled[0], a.pooled[1])


def test_latent_codec_round_trips_images_and_videos_frame_by_frame():
    codec = build_latent_codec(tiny={"block_out_channels": (8, 16), "norm_num_groups": 4})
    image, video = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 3, 16, 16) * 2 - 1
    latents = codec.encode(image)
    assert latents.shape == (2, 4, 8, 8)
    assert codec.decode(latents).shape == image.shape
    video_latents = codec.encode(video)
    assert video_latents.shape == (2, 4, 3, 8, 8)
    assert codec.decode(video_latents).shape == video.shape


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_qlora_on_cpu_says_it_needs_a_gpu():
    with pytest.raises(RuntimeError, match="needs a GPU"):
        build_denoiser("unet2d", sample_size=16, finetune="qlora")


@pytest.mark.gpu
def test_qlora_denoiser_trains_only_lora_over_4bit_weights():
    import bitsandbytes as bnb

    model = build_denoiser("unet2d", sample_size=16, finetune="qlora", lora_rank=4)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
