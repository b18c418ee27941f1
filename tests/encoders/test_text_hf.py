import json

import pytest
import torch
from conftest import build_tiny_t5

from mirokit.encoders import HFTextEncoder, TextEncoder, build_text_encoder


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    return build_tiny_t5(tmp_path_factory.mktemp("tiny_t5"))


@pytest.fixture(scope="module")
def encoder(t5_dir):
    return HFTextEncoder(str(t5_dir), max_length=8).load()


def test_output_equals_t5_on_the_same_ids(encoder, t5_dir):
    from transformers import T5EncoderModel

    assert (encoder.dim, encoder.max_length, encoder.trainable) == (32, 8, False)
    emb, mask = encoder(["a red circle", "big blue square", "a big green triangle a big red circle"])
    assert emb.shape == (3, 8, 32) and emb.dtype == torch.float32
    ids = torch.tensor(
        [
            [3, 4, 7, 1, 0, 0, 0, 0],
            [10, 6, 8, 1, 0, 0, 0, 0],
            [3, 10, 5, 9, 3, 10, 4, 1],  # truncated, </s> kept
        ]
    )
    reference = T5EncoderModel.from_pretrained(t5_dir).eval()
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state
    assert torch.equal(mask, ids != 0)
    torch.testing.assert_close(emb[mask], expected[mask], atol=1e-6, rtol=1e-5)
    assert torch.equal(emb[~mask], torch.zeros_like(emb[~mask]))
    assert not emb.requires_grad and list(encoder.parameters()) == []


def test_empty_caption_keeps_one_token_and_batch_invariance(encoder):
    emb, mask = encoder(["", "a red circle"])
    assert mask[0].tolist() == [True] + [False] * 7 and mask[:, 0].all()
    alone, _ = encoder(["a red circle"])
    other_neighbours, _ = encoder(["blue", "a red circle", "a big green triangle a big red circle"])
    torch.testing.assert_close(alone[0], emb[1], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(alone[0], other_neighbours[1], atol=1e-6, rtol=1e-5)


def test_lazy_load_spec_and_save(t5_dir, tmp_path):
    lazy = build_text_encoder({"kind": "hf_t5", "name_or_path": str(t5_dir), "max_length": 8})
    assert isinstance(lazy, HFTextEncoder) and lazy.dim == 32
    assert lazy.spec() == {"kind": "hf_t5", "name_or_path": str(t5_dir), "max_length": 8, "dtype": "fp32"}
    lazy.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["config.json"]
    assert json.loads((tmp_path / "saved" / "config.json").read_text()) == lazy.spec()
    loaded = TextEncoder.from_pretrained(tmp_path / "saved")
    emb, mask = loaded(["a red circle"])  # loads on first forward
    assert emb.shape == (1, 8, 32) and mask.sum().item() == 4
    half = HFTextEncoder(str(t5_dir), max_length=8, dtype="bfloat16")
    half_emb, _ = half(["a red circle"])
    assert half_emb.dtype == torch.float32
    torch.testing.assert_close(half_emb, emb, atol=0.1, rtol=0.1)


def test_missing_local_path_is_a_one_line_error(tmp_path):
    missing = str(tmp_path / "no_such_t5")
    with pytest.raises(FileNotFoundError, match=f"^text encoder weights not found: {missing}$"):
        HFTextEncoder(missing)
    with pytest.raises(FileNotFoundError, match="text encoder weights not found: ./nope"):
        build_text_encoder({"kind": "hf_t5", "name_or_path": "./nope"})
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        HFTextEncoder(str(tmp_path), dtype="int8")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="text encoder folder .*empty has no config.json"):
        HFTextEncoder(str(tmp_path / "empty")).load()


def test_broken_tokenizer_is_a_one_line_error(t5_dir, tmp_path):
    import shutil

    broken = tmp_path / "no_tokenizer"
    shutil.copytree(t5_dir, broken)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (broken / name).unlink()
    with pytest.raises(ValueError, match="folder .*no_tokenizer has no tokenizer file"):
        HFTextEncoder(str(broken)).load()
    (broken / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="cannot load text encoder .*no_tokenizer") as info:
        HFTextEncoder(str(broken)).load()
    assert "\n" not in str(info.value) and len(str(info.value)) < 400
