import numpy as np
import pytest
import torch
from clip_testkit import (
    CAPTIONS,
    check_scorer_basics,
    images,
    reference_pixels,
    save_clip_folder,
    tiny_clip_model,
)

from mirokit.rewards import build_scorer
from mirokit.rewards.clip_convert import convert_aesthetic_head

SIZES = [(32, 1024), (1024, 128), (128, 64), (64, 16), (16, 1)]  # published 768->1024->...; tiny CLIP has 16-dim embeds


def published_head_state_dict(in_dim: int = 16, seed: int = 0) -> dict:
    """The published file's layout: a plain state dict of layers.{0,2,4,6,7}.{weight,bias} (dropouts between)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for idx, (i, o) in zip((0, 2, 4, 6, 7), [(in_dim, 1024)] + SIZES[1:]):
        sd[f"layers.{idx}.weight"] = torch.randn(o, i, generator=g) / i ** 0.5
        sd[f"layers.{idx}.bias"] = torch.randn(o, generator=g) * 0.1
    return sd


def reference_head(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """The published MLP written out: five Linear layers, no activations (dropouts are identity in eval)."""
    for idx in (0, 2, 4, 6, 7):
        x = x @ sd[f"layers.{idx}.weight"].T + sd[f"layers.{idx}.bias"]
    return x.squeeze(-1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("aes")
    clip_dir = save_clip_folder(d / "clip")
    sd = published_head_state_dict()
    pth = d / "sac+logos+ava1-l14-linearMSE.pth"
    torch.save(sd, pth)  # fixture creation only; the scorer reads it with weights_only=True
    return clip_dir, pth, sd


def test_aesthetic_score_is_the_head_on_normalised_image_embeds(setup):
    clip_dir, pth, sd = setup
    scorer = build_scorer("aesthetic_score", model=clip_dir, head=str(pth))
    a = check_scorer_basics(scorer)
    model = tiny_clip_model()
    with torch.no_grad():
        emb = model.get_image_features(pixel_values=reference_pixels(model, images())).pooler_output
        ref = reference_head(sd, emb / emb.norm(dim=-1, keepdim=True))
    np.testing.assert_allclose(a, ref.numpy(), rtol=1e-4, atol=1e-5)
    # captions are ignored
    np.testing.assert_array_equal(scorer.score(images(), ["x"] * 8), a)


def test_safetensors_conversion_and_folder_default(setup, tmp_path):
    clip_dir, pth, _ = setup
    ref = build_scorer("aesthetic_score", model=clip_dir, head=str(pth)).score(images(3), CAPTIONS[:3])
    out = convert_aesthetic_head(pth, tmp_path / "aesthetic_head.safetensors")
    from safetensors.torch import load_file

    assert sorted(load_file(str(out))) == sorted(published_head_state_dict())
    np.testing.assert_array_equal(build_scorer("aesthetic_score", model=clip_dir, head=str(out)).score(
        images(3), CAPTIONS[:3]), ref)
    folder = save_clip_folder(tmp_path / "with_head")
    (tmp_path / "with_head" / "aesthetic_head.safetensors").write_bytes(out.read_bytes())
    np.testing.assert_array_equal(build_scorer("aesthetic_score", model=folder).score(images(3), CAPTIONS[:3]), ref)


class NotATensor:
    pass


def test_head_errors_are_one_line(setup, tmp_path):
    clip_dir, _, sd = setup
    with pytest.raises(ValueError, match="pass head="):
        build_scorer("aesthetic_score", model=clip_dir)
    with pytest.raises(FileNotFoundError, match="aesthetic_score head weights not found"):
        build_scorer("aesthetic_score", model=clip_dir, head=str(tmp_path / "nope.pth"))
    bad = tmp_path / "pickled.pth"
    torch.save({**sd, "extra": NotATensor()}, bad)
    with pytest.raises(ValueError, match="cannot read .*pickled.pth as a tensor state dict") as err:
        build_scorer("aesthetic_score", model=clip_dir, head=str(bad)).score(images(1), ["a"])
    assert "\n" not in str(err.value)
    renamed = tmp_path / "renamed.pth"
    torch.save({k.replace("layers.7", "layers.8"): v for k, v in sd.items()}, renamed)
    with pytest.raises(ValueError, match=r"unexpected aesthetic head key '8\.(bias|weight)'"):
        build_scorer("aesthetic_score", model=clip_dir, head=str(renamed)).score(images(1), ["a"])
