"""mirokit.pretrained: one save/load for every model class (generator, text encoder, world autoencoder).

Each is saved, reloaded bit-exactly (also from an explicit state dict, e.g. EMA weights), and every broken
folder is a one-line error naming it."""

import json

import pytest
import torch

from mirokit.config import ConfigError
from mirokit.encoders import TextEncoder, TokenTextEncoder, TokenTextEncoderConfig
from mirokit.models import MiroGenerator
from mirokit.pretrained import CONFIG_NAME, WEIGHTS_NAME
from mirokit.world.autoencoder import WorldAEConfig, WorldAutoencoder


def _generator(cfg):
    return MiroGenerator(cfg)


def _text_encoder(_):
    return TokenTextEncoder(TokenTextEncoderConfig(vocab_size=50, dim=16, max_length=6, num_layers=1, num_heads=4))


def _autoencoder(_):
    return WorldAutoencoder(WorldAEConfig(widths=[8, 16], latent_channels=4, image_size=32))


MODELS = {"generator": (_generator, MiroGenerator), "text_encoder": (_text_encoder, TextEncoder),
          "world_ae": (_autoencoder, WorldAutoencoder)}


@pytest.fixture(params=list(MODELS))
def model_and_loader(request, tiny_generator_config):
    build, loader = MODELS[request.param]
    torch.manual_seed(0)
    model = build(tiny_generator_config)
    with torch.no_grad():  # perturb: a fresh initialisation could not match by accident
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    return model, loader


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_is_exact(model_and_loader, tmp_path):
    model, loader = model_and_loader
    assert model.save_pretrained(tmp_path / "m") == tmp_path / "m"
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    loaded = loader.from_pretrained(tmp_path / "m")
    assert type(loaded) is type(model) and not loaded.training and _same(loaded, model)


def test_an_explicit_state_dict_is_written_and_the_live_weights_kept(model_and_loader, tmp_path):
    model, loader = model_and_loader
    other = {k: v + 1 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.save_pretrained(tmp_path / "m", state_dict=other)
    loaded = loader.from_pretrained(tmp_path / "m").state_dict()
    assert all(torch.equal(loaded[k], other[k]) for k in other)
    assert all(torch.equal(model.state_dict()[k], before[k]) for k in before)


def _break(folder, how: str) -> None:
    from safetensors.torch import load_file, save_file

    if how == "no config":
        (folder / CONFIG_NAME).unlink()
    elif how == "no weights":
        (folder / WEIGHTS_NAME).unlink()
    elif how == "bad json":
        (folder / CONFIG_NAME).write_text("{not json")
    elif how == "unknown key":
        config = json.loads((folder / CONFIG_NAME).read_text())
        (folder / CONFIG_NAME).write_text(json.dumps({**config, "no_such_key": 1}))
    elif how in ("missing tensor", "unexpected tensor", "mis-shaped tensor"):
        state = load_file(str(folder / WEIGHTS_NAME))
        name = sorted(state)[0]
        if how == "missing tensor":
            del state[name]
        elif how == "unexpected tensor":
            state["not.a.weight"] = torch.zeros(1)
        else:
            state[name] = torch.zeros(*state[name].shape, 2)
        save_file(state, str(folder / WEIGHTS_NAME))
    elif how == "corrupt weights":
        (folder / WEIGHTS_NAME).write_bytes(b"\x00" * 20)


CASES = [("no folder", FileNotFoundError, "folder not found"), ("no config", FileNotFoundError, "missing config.json"),
         ("no weights", FileNotFoundError, "missing model.safetensors"), ("bad json", ConfigError, "not valid JSON"),
         ("unknown key", ConfigError, "no_such_key"), ("missing tensor", ValueError, "missing"),
         ("unexpected tensor", ValueError, "unexpected not.a.weight"), ("mis-shaped tensor", ValueError, "mis-shaped"),
         ("corrupt weights", ValueError, "cannot read")]


@pytest.mark.parametrize("how, error, match", CASES)
def test_a_broken_folder_is_a_one_line_error_naming_it(model_and_loader, tmp_path, how, error, match):
    model, loader = model_and_loader
    folder = tmp_path / "m"
    if how != "no folder":
        model.save_pretrained(folder)
        _break(folder, how)
    with pytest.raises(error, match=match) as info:
        loader.from_pretrained(folder)
    assert "\n" not in str(info.value) and str(folder) in str(info.value)


def test_a_frozen_hub_encoder_saves_its_config_only(tmp_path):
    from conftest import build_tiny_t5

    t5 = build_tiny_t5(tmp_path / "t5")
    encoder = TextEncoder.from_config(TextEncoder.config_from_dict(
        {"kind": "hf_t5", "name_or_path": str(t5), "max_length": 8}, "test"))
    encoder.save_pretrained(tmp_path / "enc")
    assert [p.name for p in (tmp_path / "enc").iterdir()] == [CONFIG_NAME]
    loaded = TextEncoder.from_pretrained(tmp_path / "enc")
    assert loaded.spec() == encoder.spec()
