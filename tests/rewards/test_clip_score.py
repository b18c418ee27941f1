import json

import numpy as np
import pytest
import torch
from clip_testkit import (
    CAPTIONS,
    check_scorer_basics,
    images,
    reference_cosine,
    reference_pixels,
    save_clip_folder,
    tiny_clip_model,
)

from mirokit.rewards import build_scorer


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return save_clip_folder(tmp_path_factory.mktemp("clip"))


def test_clip_score_is_the_raw_cosine_of_the_transformers_model(clip_dir):
    scorer = build_scorer("clip_score", model=clip_dir)
    a = check_scorer_basics(scorer)
    assert scorer.describe()["architecture"] == "clip"
    model = tiny_clip_model()
    imgs = images()
    ref = reference_cosine(model, reference_pixels(model, imgs), CAPTIONS)
    np.testing.assert_allclose(a, ref.numpy(), rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(a) <= 1.0 + 1e-6)


def test_long_captions_are_truncated_to_77_tokens(clip_dir):
    scorer = build_scorer("clip_score", model=clip_dir)
    long = "a big red circle " * 40
    s = scorer.score(images(2), [long, long + "and more words"])
    assert s.shape == (2,) and np.isfinite(s).all()
    ids = scorer.text_inputs([long])["input_ids"]
    assert ids.shape == (1, 77) and int(ids[0, -1]) == scorer.tokenizer.eos_token_id


def test_bad_inputs_name_the_item(clip_dir):
    scorer = build_scorer("clip_score", model=clip_dir)
    with pytest.raises(TypeError, match="image 1 is a ndarray"):
        scorer.score([images(1)[0], np.zeros((4, 4, 3))], ["a", "b"])
    with pytest.raises(TypeError, match="caption 0 is a int"):
        scorer.score(images(1), [3])
    with pytest.raises(ValueError, match="2 images but 1 captions"):
        scorer.score(images(2), ["a"])
    with pytest.raises(FileNotFoundError, match="clip_score weights not found"):
        build_scorer("clip_score", model=str(clip_dir) + "/missing")


def test_jina_clip_needs_explicit_trust_remote_code():
    with pytest.raises(ValueError, match="trust_remote_code=True") as err:
        build_scorer("clip_score")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="unknown architecture"):
        build_scorer("clip_score", model="openai/clip-vit-base-patch32", architecture="siglip")


class _FakeJina:
    """Stands in for jina-clip-v2's remote code: encode_text / encode_image -> (N, 8) unnormalised tensors."""

    def to(self, *a, **k):
        return self

    def eval(self):
        return self

    def encode_text(self, sentences, batch_size=32, convert_to_tensor=False, truncate_dim=None):
        return torch.stack([torch.arange(8.0) + len(s) for s in sentences])[:, :truncate_dim]

    def encode_image(self, imgs, batch_size=32, convert_to_tensor=False, truncate_dim=None):
        return torch.stack([torch.arange(8.0).flip(0) * im.size[0] for im in imgs])[:, :truncate_dim]


def test_jina_clip_path_runs_its_remote_code_only_when_trusted(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "jina_clip"}))
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        build_scorer("clip_score", model=str(tmp_path)).score(images(1), ["a"])
    seen = {}

    def fake_from_pretrained(path, **kwargs):
        seen.update(kwargs, path=path)
        return _FakeJina()

    import transformers

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained", fake_from_pretrained)
    scorer = build_scorer("clip_score", model=str(tmp_path), trust_remote_code=True, truncate_dim=4)
    imgs, caps = images(3), ["a", "big red", "circle"]
    s = scorer.score(imgs, caps)
    assert seen["trust_remote_code"] is True and seen["local_files_only"] is True and seen["path"] == str(tmp_path)
    fake = _FakeJina()
    t, i = fake.encode_text(caps, truncate_dim=4), fake.encode_image(imgs, truncate_dim=4)
    ref = torch.nn.functional.cosine_similarity(t, i, dim=-1)
    np.testing.assert_allclose(s, ref.numpy(), rtol=1e-6)


def test_unsupported_model_type_is_one_line(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "siglip"}))
    with pytest.raises(ValueError, match="unsupported model_type 'siglip'"):
        build_scorer("clip_score", model=str(tmp_path)).score(images(1), ["a"])


def test_the_five_clip_family_keys_are_registered():
    from mirokit.rewards import available_scorers

    known = available_scorers()
    for key in ("clip_score", "aesthetic_score", "pick_a_score_score", "hpsv2_score", "sciscore_score"):
        assert known[key]
