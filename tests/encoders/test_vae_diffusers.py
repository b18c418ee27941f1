"""The `diffusers_vae` image space on tiny random stand-ins of SD3's VAE (AutoencoderKL, 16 channels, scaling and
shift factors) and Sana's DC-AE (AutoencoderDC, 32 channels), saved in diffusers' pipeline layout."""

import pytest
import torch
from tiny_pipelines import build_tiny_dc_ae, build_tiny_sd3_vae

from mirokit.encoders import build_image_space


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("vaes")
    build_tiny_sd3_vae(root / "sd3")
    build_tiny_dc_ae(root / "sana")
    return root


def test_sd3_vae_moments_normalisation_and_decode_as_its_pipeline(folders):
    from diffusers import AutoencoderKL

    space = build_image_space({"kind": "diffusers_vae", "name_or_path": str(folders / "sd3")})
    assert (space.channels, space.downsample(), space.scaling_factor, space.shift_factor) == (16, 2, 1.5305, 0.0609)
    assert space.data_shape(16, 8) == (32, 8) and not space.needs_noise
    vae = AutoencoderKL.from_pretrained(folders / "sd3", subfolder="vae").eval()
    pixels = torch.rand(3, 3, 16, 16) * 2 - 1
    moments = space.encode_moments(pixels)
    with torch.no_grad():
        dist = vae.encode(pixels).latent_dist
    assert moments.shape == (3, 32, 8, 8)
    torch.testing.assert_close(moments, torch.cat([dist.mean, dist.std], 1), atol=1e-5, rtol=1e-5)
    x = space.to_model(moments)
    torch.testing.assert_close(x, (dist.mean - 0.0609) * 1.5305, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # StableDiffusion3Pipeline: latents / scaling_factor + shift_factor, then [-1, 1] -> [0, 1]
        image = vae.decode(x / 1.5305 + 0.0609).sample
    decoded = space.decode(x)
    assert decoded.shape == (3, 3, 16, 16)
    torch.testing.assert_close(decoded, (image / 2 + 0.5).clamp(0, 1), atol=1e-5, rtol=1e-5)
    assert len(space.to_pil(x)) == 3 and space.to_pil(x)[0].size == (16, 16)
    sampled = build_image_space({**space.spec(), "sample": True})
    with pytest.raises(ValueError, match="needs noise"):
        sampled.to_model(moments)
    noise = torch.randn(3, 16, 8, 8)
    torch.testing.assert_close(sampled.to_model(moments, noise),
                               (dist.mean + dist.std * noise - 0.0609) * 1.5305, atol=1e-5, rtol=1e-5)
    pixel_space = build_image_space({**space.spec(), "input": "pixels"})
    assert pixel_space.data_shape(16, 8) == (3, 16)
    torch.testing.assert_close(pixel_space.to_model(pixels), x, atol=1e-5, rtol=1e-5)


def test_dc_ae_is_deterministic_and_scaled_as_sanas_pipeline(folders):
    from diffusers import AutoencoderDC

    space = build_image_space({"kind": "diffusers_vae", "name_or_path": str(folders / "sana"), "dtype": "fp32"})
    assert (space.channels, space.downsample(), space.scaling_factor, space.shift_factor) == (32, 4, 0.41407, 0.0)
    vae = AutoencoderDC.from_pretrained(folders / "sana", subfolder="vae").eval()
    pixels = torch.rand(2, 3, 16, 16) * 2 - 1
    moments = space.encode_moments(pixels)
    with torch.no_grad():
        latent = vae.encode(pixels).latent
    assert moments.shape == (2, 64, 4, 4) and torch.equal(moments[:, 32:], torch.zeros(2, 32, 4, 4))
    x = space.to_model(moments)
    torch.testing.assert_close(x, latent * 0.41407, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # SanaPipeline: latents / scaling_factor
        image = vae.decode(x / 0.41407).sample
    torch.testing.assert_close(space.decode(x), (image / 2 + 0.5).clamp(0, 1), atol=1e-5, rtol=1e-5)
    assert space.decode(x).shape == (2, 3, 16, 16)
    given = build_image_space({**space.spec(), "scaling_factor": 2.0, "shift_factor": 0.5})
    torch.testing.assert_close(given.to_model(moments), (latent - 0.5) * 2.0, atol=1e-5, rtol=1e-5)
    half = build_image_space(space.spec()).to_dtype(torch.bfloat16)
    assert half.vae.dtype == torch.bfloat16 and half.decode(x).dtype == torch.float32


def test_one_line_errors(folders, tmp_path):
    with pytest.raises(FileNotFoundError, match="VAE weights not found: /no/such"):
        build_image_space({"kind": "diffusers_vae", "name_or_path": "/no/such"})
    with pytest.raises(ValueError, match="has no vae/ folder"):
        build_image_space({"kind": "diffusers_vae", "name_or_path": str(tmp_path)}).vae_config()
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "config.json").write_text('{"_class_name": "SD3Transformer2DModel"}')
    with pytest.raises(ValueError, match="holds a SD3Transformer2DModel, not AutoencoderKL or AutoencoderDC"):
        build_image_space({"kind": "diffusers_vae", "name_or_path": str(tmp_path)}).vae_config()
    space = build_image_space({"kind": "diffusers_vae", "name_or_path": str(folders / "sana")})
    with pytest.raises(ValueError, match="image_channels is 16 but the VAE latent space of .* has 32 channels"):
        space.data_shape(16, 8)
    with pytest.raises(ValueError, match="unknown image_space.input"):
        build_image_space({"kind": "diffusers_vae", "input": "latents"})
