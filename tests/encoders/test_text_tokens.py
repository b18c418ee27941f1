import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch

from mirokit.encoders import (
    TextEncoder,
    TokenTextEncoder,
    TokenTextEncoderConfig,
    build_text_encoder,
)
from mirokit.encoders.text_tokens import BOS_ID, PAD_ID, tokenize

CAPTIONS = ["a red circle", "", "A  Red, circle!", "a very long caption " * 6]
REPO = Path(__file__).resolve().parents[2]


def _encoder(seed=0, **kwargs):
    torch.manual_seed(seed)
    return TokenTextEncoder(TokenTextEncoderConfig(**kwargs)).eval()


def test_shapes_mask_and_padding():
    encoder = _encoder()
    assert isinstance(encoder, TextEncoder) and encoder.trainable
    assert (encoder.dim, encoder.max_length) == (64, 16)
    emb, mask = encoder(CAPTIONS)
    assert emb.shape == (4, 16, 64) and emb.dtype == torch.float32
    assert mask.shape == (4, 16) and mask.dtype == torch.bool
    assert mask.sum(dim=1).tolist() == [4, 1, 4, 16]  # BOS + words, truncated at max_length
    assert mask[:, 0].all()
    assert torch.equal(emb[~mask], torch.zeros_like(emb[~mask]))  # padded positions are zero
    assert emb[mask].abs().sum(dim=-1).min() > 0
    assert torch.equal(emb[0], emb[2])  # case and punctuation do not matter
    empty_emb, empty_mask = encoder([])
    assert empty_emb.shape == (0, 16, 64) and empty_mask.shape == (0, 16)


def test_ids_are_crc32_derived_and_stable_across_processes():
    ids, mask = tokenize(["Red  circle"], vocab_size=4096, max_length=5)
    red = zlib.crc32(b"red") % 4094 + 2
    circle = zlib.crc32(b"circle") % 4094 + 2
    assert ids.tolist() == [[BOS_ID, red, circle, PAD_ID, PAD_ID]]
    assert mask.tolist() == [[True, True, True, False, False]]
    code = (
        "from mirokit.encoders.text_tokens import tokenize;"
        "print(tokenize(['Red  circle'], vocab_size=4096, max_length=5)[0].tolist())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ids.tolist()


def test_init_is_deterministic_and_batch_invariant():
    a, b, c = _encoder(0), _encoder(0), _encoder(1)
    with torch.no_grad():
        out_a, out_b, out_c = a(CAPTIONS)[0], b(CAPTIONS)[0], c(CAPTIONS)[0]
        alone = a([CAPTIONS[0]])[0]
    assert torch.equal(out_a, out_b)
    assert not torch.allclose(out_a, out_c)
    torch.testing.assert_close(alone[0], out_a[0], atol=1e-5, rtol=1e-5)


def test_words_stay_distinguishable_through_the_layers_at_init():
    """Unit-scale embeddings: at init each position still carries its own word, not an average of the caption
    (with GPT-2's 0.02 the layers' outputs swamped them and all positions came out nearly equal)."""
    encoder = _encoder(num_layers=2)
    with torch.no_grad():
        emb, _ = encoder(["a red circle", "a red square"])
    cos = torch.nn.functional.cosine_similarity
    assert cos(emb[0, 3], emb[1, 3], dim=0) < 0.5  # circle vs square
    assert cos(emb[0, 2], emb[0, 3], dim=0) < 0.5  # red vs circle in one caption
    assert cos(emb[0, 2], emb[1, 2], dim=0) > 0.8  # red, followed by different words


def test_gradients_reach_the_embeddings():
    encoder = _encoder().train()
    emb, mask = encoder(["a red circle", "a blue square"])
    emb.pow(2).sum().backward()
    assert encoder.token_embedding.weight.grad.abs().sum() > 0
    assert encoder.position_embedding.grad.abs().sum() > 0


def test_save_and_load_round_trip(tmp_path):
    encoder = _encoder(num_layers=2, dim=32, max_length=8, vocab_size=100)
    with torch.no_grad():  # perturb so that a fresh init could not match by accident
        encoder.token_embedding.weight.add_(1.0)
    encoder.save_pretrained(tmp_path / "enc")
    assert json.loads((tmp_path / "enc" / "config.json").read_text()) == encoder.spec()
    assert (tmp_path / "enc" / "model.safetensors").is_file()
    loaded = TextEncoder.from_pretrained(tmp_path / "enc")
    assert isinstance(loaded, TokenTextEncoder) and loaded.spec() == encoder.spec()
    with torch.no_grad():
        assert torch.equal(loaded(CAPTIONS)[0], encoder(CAPTIONS)[0])
    rebuilt = build_text_encoder(encoder.spec())
    assert rebuilt.spec() == encoder.spec()


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"kind": "bert"}, "unknown text encoder 'bert'; known: hf_t5, sana_text, sd3_text, tokens"),
        ({"dim": 8}, "missing kind; known: hf_t5, sana_text, sd3_text, tokens"),
        ({"kind": "tokens", "width": 8},
         "unknown config key.* text_encoder.width; known .*: dim, max_length, num_heads"),
        ({"kind": "tokens", "dim": 30}, "not divisible"),
        ({"kind": "hf_t5"}, "missing required key.* text_encoder.name_or_path"),
    ],
)
def test_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match) as info:
        build_text_encoder(spec)
    assert "\n" not in str(info.value)


def test_bad_captions_name_the_item():
    with pytest.raises(ValueError, match="caption 1 is not a string"):
        _encoder()(["ok", None])
    with pytest.raises(ValueError, match="list of captions"):
        _encoder()("a red circle")
