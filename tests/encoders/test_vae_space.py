"""The VAE latent image space on a tiny random diffusers AutoencoderKL saved like a hub checkpoint."""

import json

import pytest
import torch
from conftest import build_tiny_vae

from mirokit.config import ConfigError
from mirokit.encoders import build_image_space
from mirokit.encoders.vae import SDXL_LATENT_MEAN, SDXL_LATENT_STD


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vae")
    build_tiny_vae(folder)
    return folder


def test_official_normalisation_gives_std_half_latents(vae_dir):
    space = build_image_space({"kind": "vae", "name_or_path": str(vae_dir), "sample": False})
    mean = torch.tensor(SDXL_LATENT_MEAN).view(1, 4, 1, 1)
    std = torch.tensor(SDXL_LATENT_STD).view(1, 4, 1, 1)
    z = mean + std * torch.randn(64, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    x = space.to_model(torch.cat([z, torch.ones_like(z)], dim=1))  # moments with the mean = z
    torch.testing.assert_close(x.mean((0, 2, 3)), torch.zeros(4), atol=0.02, rtol=0)
    torch.testing.assert_close(x.std((0, 2, 3)), torch.full((4,), 0.5), atol=0.02, rtol=0)
    spec = space.spec()  # saved explicit: the model keeps its constants
    assert spec["normalisation"] == "explicit" and len(spec["scale"]) == 4
    assert torch.equal(build_image_space(spec).scale, space.scale)


def test_moments_pixels_noise_and_decode(vae_dir, tmp_path):
    space = build_image_space({"kind": "vae", "name_or_path": str(vae_dir)})
    assert space.downsample() == 2 and space.data_shape(4, 8) == (8, 8) and space.needs_noise
    with pytest.raises(ValueError, match="image_channels is 3 but the VAE latent space of .* has 4 channels"):
        space.data_shape(3, 8)
    pixels = torch.rand(3, 3, 16, 16) * 2 - 1
    moments = space.encode_moments(pixels)
    assert moments.shape == (3, 8, 8, 8) and (moments[:, 4:] > 0).all()
    noise = torch.randn(3, 4, 8, 8)
    drawn = space.to_model(moments, noise)
    mean_only = build_image_space({"kind": "vae", "name_or_path": str(vae_dir), "sample": False}).to_model(moments)
    assert not torch.allclose(drawn, mean_only)
    on_the_fly = build_image_space({"kind": "vae", "name_or_path": str(vae_dir), "input": "pixels"})
    assert on_the_fly.data_shape(4, 8) == (3, 16)
    torch.testing.assert_close(on_the_fly.to_model(pixels, noise), drawn)
    images = space.decode(drawn)
    assert images.shape == (3, 3, 16, 16) and 0 <= images.min() and images.max() <= 1
    assert [im.size for im in space.to_pil(drawn)] == [(16, 16)] * 3
    with pytest.raises(ValueError, match="needs noise"):
        space.to_model(moments)
    with pytest.raises(ValueError, match="moments have 4 channels, expected 8"):
        space.to_model(moments[:, :4], noise)


def test_dataset_statistics_and_bad_configs(vae_dir, tmp_path):
    (tmp_path / "stats.json").write_text(json.dumps({"mean": [0.0, 1.0, 2.0, 3.0], "std": [1.0, 2.0, 4.0, 5.0]}))
    space = build_image_space({"kind": "vae", "name_or_path": str(vae_dir), "normalisation": "stats",
                               "stats": str(tmp_path / "stats.json")})
    torch.testing.assert_close(space.scale.flatten(), torch.tensor([0.5, 0.25, 0.125, 0.1]))
    torch.testing.assert_close(space.bias.flatten(), torch.tensor([0.0, -0.25, -0.25, -0.3]))
    cases = [({"normalisation": "stats"}, "needs image_space.stats"),
             ({"normalisation": "nope"}, "unknown image_space.normalisation"),
             ({"input": "latents"}, "unknown image_space.input"),
             ({"name_or_path": str(tmp_path / "missing")}, "VAE weights not found")]
    for extra, message in cases:
        with pytest.raises((ConfigError, ValueError, FileNotFoundError), match=message):
            build_image_space({"kind": "vae", "name_or_path": str(vae_dir), **extra})
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ConfigError, match="not a latent statistics file"):
        build_image_space({"kind": "vae", "name_or_path": str(vae_dir), "normalisation": "stats",
                           "stats": str(tmp_path / "bad.json")})
