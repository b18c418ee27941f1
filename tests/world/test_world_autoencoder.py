"""The world autoencoder, its `world_ae` image space and the world data source on precomputed latents."""

import pytest
import torch
from safetensors.torch import save_file

from mirokit.config import ConfigError, from_dict
from mirokit.data.source import DataConfig, build_dataset
from mirokit.encoders.pixel import build_image_space
from mirokit.world.ae_space import WorldAESpace, WorldAESpaceConfig
from mirokit.world.autoencoder import AETrainConfig, WorldAEConfig, WorldAutoencoder, train_autoencoder
from mirokit.world.dataset import WorldDataset
from mirokit.world.sampling import WorldConfig

TINY = WorldAEConfig(widths=[8, 16], latent_channels=4, image_size=32)


def test_shapes_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    ae = WorldAutoencoder(TINY).eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    z = ae.encode(x)
    assert z.shape == (3, 4, 8, 8) and ae.decode(z).shape == (3, 3, 32, 32)
    ae.save_pretrained(tmp_path / "ae")
    again = WorldAutoencoder.from_pretrained(tmp_path / "ae")
    assert torch.equal(again.encode(x), z)
    with pytest.raises(FileNotFoundError, match="folder not found"):
        WorldAutoencoder.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="multiples of 8"):
        WorldAEConfig(widths=[6])


def test_training_lowers_the_reconstruction_error():
    images = WorldDataset(64, WorldConfig(seed=0)).images(list(range(64)))
    ae, losses = train_autoencoder(images, TINY, AETrainConfig(steps=60, batch_size=16), progress=False)
    assert sum(losses[-10:]) < 0.7 * sum(losses[:10])
    assert not ae.training and not any(p.requires_grad for p in ae.parameters())


def test_space_normalises_decodes_and_rebuilds_from_its_spec(tmp_path):
    torch.manual_seed(0)
    WorldAutoencoder(TINY).save_pretrained(tmp_path / "ae")
    space = WorldAESpace(WorldAESpaceConfig(name_or_path=str(tmp_path / "ae")))
    pixels = WorldDataset(32, WorldConfig(seed=1)).images(list(range(32)))
    latents = space.encode(pixels)
    normed = space.with_normalisation(latents)
    x = normed.to_model(latents)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.full((4,), 0.5), atol=1e-3)
    # decoding inverts the normalisation: model-space x decodes like the raw latents
    raw = (space.ae.decode(latents) + 1) / 2
    assert torch.allclose(normed.decode(x), raw.clamp(0, 1), atol=1e-5)
    rebuilt = build_image_space(normed.spec())
    assert isinstance(rebuilt, WorldAESpace) and torch.allclose(rebuilt.to_model(latents), x)
    assert len(rebuilt.to_pil(x[:2])) == 2 and rebuilt.data_shape(4, 8) == (4, 8)
    with pytest.raises(ValueError, match="latent channels"):
        rebuilt.data_shape(3, 8)
    pix = WorldAESpace(WorldAESpaceConfig(name_or_path=str(tmp_path / "ae"), input="pixels"))
    assert pix.data_shape(4, 8) == (3, 32) and torch.allclose(pix.to_model(pixels), latents)


def test_space_codes_in_cpu_chunks_like_one_call_of_the_autoencoder(tmp_path):
    # the space runs the autoencoder in channels-last chunks of CPU_CHUNK on the CPU (faster); the result must
    # not depend on that: 150 images (two full chunks and a partial one) as one default-layout call
    from mirokit.world.ae_space import CPU_CHUNK

    torch.manual_seed(0)
    WorldAutoencoder(TINY).save_pretrained(tmp_path / "ae")
    reference = WorldAutoencoder.from_pretrained(tmp_path / "ae")
    space = WorldAESpace(WorldAESpaceConfig(name_or_path=str(tmp_path / "ae")))
    pixels = torch.rand(150, 3, 32, 32) * 2 - 1
    assert len(pixels) > 2 * CPU_CHUNK
    latents = space.encode(pixels)
    assert latents.is_contiguous() and torch.allclose(latents, reference.encode(pixels), atol=1e-5)
    images = space.decode(latents)
    assert images.is_contiguous()
    assert torch.allclose(images, ((reference.decode(latents) + 1) / 2).clamp(0, 1), atol=1e-5)
    assert space.encode(pixels[:0]).shape == (0, 4, 8, 8) and space.decode(latents[:0]).shape == (0, 3, 32, 32)


def test_world_source_serves_latents(tmp_path):
    latents = torch.randn(16, 4, 8, 8)
    save_file({"latents": latents}, str(tmp_path / "lat.safetensors"))
    cfg = from_dict(DataConfig, {"kind": "world", "num_samples": 16, "seed": 0,
                                 "latents": str(tmp_path / "lat.safetensors")})
    ds = build_dataset(cfg, image_size=8, channels=4)
    sample = ds[5]
    assert torch.equal(sample.image, latents[5]) and sample.caption == WorldDataset(16, WorldConfig()).captions[5]
    assert set(sample.scores) == {"world_alignment", "world_quality", "world_composition"}
    with pytest.raises(ValueError, match="expects"):
        build_dataset(cfg, image_size=16, channels=4)
    bad = from_dict(DataConfig, {"kind": "world", "num_samples": 16, "latents": str(tmp_path / "none.safetensors")})
    with pytest.raises(FileNotFoundError, match="latents file not found"):
        build_dataset(bad, image_size=8, channels=4)


def test_a_different_autoencoder_is_a_one_line_error(tmp_path):
    torch.manual_seed(0)
    WorldAutoencoder(TINY).save_pretrained(tmp_path / "ae")
    space = WorldAESpace(WorldAESpaceConfig(name_or_path=str(tmp_path / "ae")))
    latents = space.encode(torch.zeros(2, 3, 32, 32))
    spec = space.with_normalisation(torch.randn(8, 4, 8, 8)).spec()
    assert len(spec["fingerprint"]) == 16
    torch.manual_seed(1)
    WorldAutoencoder(TINY).save_pretrained(tmp_path / "ae")  # retrained in place
    with pytest.raises(ValueError, match="fingerprint"):
        build_image_space(spec).decode(latents)
