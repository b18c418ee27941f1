"""Sana's Gemma and SD3's CLIP-L + CLIP-G + T5 text encoders on tiny random stand-ins saved in diffusers' pipeline
layout, compared with diffusers' own pipelines' encode_prompt on the same parts; the SD3 pooled vector reaching the
SD3 transformer."""

import json
import shutil

import pytest
import torch
from tiny_pipelines import INSTRUCTION, build_tiny_gemma, build_tiny_sd3_text

from mirokit.encoders import TextEncoder, build_text_encoder
from mirokit.encoders.text_sd3 import POOLED_MARK

CAPTIONS = ["a red circle", "Big blue square ", "a big green triangle a big red circle a big blue square a"]


@pytest.fixture(scope="module")
def sd3_dir(tmp_path_factory):
    return build_tiny_sd3_text(tmp_path_factory.mktemp("sd3"))


@pytest.fixture(scope="module")
def sana_dir(tmp_path_factory):
    return build_tiny_gemma(tmp_path_factory.mktemp("sana"))


def sd3_pipeline(folder):
    from diffusers import StableDiffusion3Pipeline
    from transformers import AutoTokenizer, CLIPTextModelWithProjection, T5EncoderModel

    parts = {"text_encoder": CLIPTextModelWithProjection, "text_encoder_2": CLIPTextModelWithProjection,
             "text_encoder_3": T5EncoderModel}
    loaded = {name: cls.from_pretrained(folder / name).eval() for name, cls in parts.items()}
    tokenizers = {f"tokenizer{s}": AutoTokenizer.from_pretrained(folder / f"tokenizer{s}") for s in ("", "_2", "_3")}
    return StableDiffusion3Pipeline(transformer=None, scheduler=None, vae=None, **loaded, **tokenizers)


def test_sd3_tokens_and_pooled_vector_are_the_pipelines(sd3_dir):
    encoder = build_text_encoder({"kind": "sd3_text", "name_or_path": str(sd3_dir), "max_length": 8})
    assert (encoder.dim, encoder.pooled_dim, encoder.max_length, encoder.trainable) == (48, 20, 77 + 8 + 1, False)
    emb, mask = encoder(CAPTIONS)
    assert emb.shape == (3, 86, 48) and emb.dtype == torch.float32 and mask.all()
    with torch.no_grad():
        tokens, _, pooled, _ = sd3_pipeline(sd3_dir).encode_prompt(CAPTIONS, None, None, device=torch.device("cpu"),
                                                                   do_classifier_free_guidance=False,
                                                                   max_sequence_length=8)
    assert tokens.shape == (3, 85, 48) and pooled.shape == (3, 20)
    torch.testing.assert_close(emb[:, :-1], tokens, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(emb[:, -1, :20], pooled, atol=1e-6, rtol=1e-5)
    assert torch.equal(emb[:, -1, 20:-1], torch.zeros(3, 27)) and (emb[:, -1, -1] == POOLED_MARK).all()
    alone, _ = encoder(CAPTIONS[1:2])  # batch-invariant
    torch.testing.assert_close(alone[0], emb[1], atol=1e-6, rtol=1e-5)


def test_sd3_pooled_vector_reaches_the_transformer(sd3_dir):
    """The SD3 trunk takes the pooled token out: its call is the pipeline's (tokens, pooled_projections)."""
    from diffusers import SD3Transformer2DModel

    from mirokit.config import from_dict
    from mirokit.models import GeneratorConfig, MiroGenerator
    from mirokit.models.diffusers_sd3 import POOLED_MARK as TRUNK_MARK
    from mirokit.models.diffusers_sd3 import split_pooled

    assert TRUNK_MARK == POOLED_MARK
    config = {"sample_size": 8, "patch_size": 2, "in_channels": 4, "out_channels": 4, "num_layers": 1,
              "attention_head_dim": 8, "num_attention_heads": 2, "joint_attention_dim": 48,
              "caption_projection_dim": 16, "pooled_projection_dim": 20, "pos_embed_max_size": 8}
    cfg = from_dict(GeneratorConfig, {"image_channels": 4, "image_size": 8, "reward_keys": ["a"], "text_dim": 48,
                                      "parametrisation": "rectified_flow",
                                      "backbone": {"kind": "diffusers", "family": "sd3", "transformer_config": config}})
    torch.manual_seed(0)
    model = MiroGenerator(cfg).eval()
    encoder = build_text_encoder({"kind": "sd3_text", "name_or_path": str(sd3_dir), "max_length": 8})
    text, mask = encoder(CAPTIONS[:2])
    trunk = model.network.trunk
    tokens, keep, pooled = trunk.text_and_pooled(text, mask)
    assert torch.equal(pooled, text[:, -1, :20]) and torch.equal(tokens[:, :-1], text[:, :-1])
    assert keep[:, :-1].all() and not keep[:, -1].any() and torch.equal(tokens[:, -1], torch.zeros(2, 48))
    bare = SD3Transformer2DModel(**config).eval()
    bare.load_state_dict(trunk.transformer.state_dict())
    y, gamma = torch.randn(2, 4, 8, 8), torch.tensor([0.3, 0.7])
    with torch.no_grad():
        out = model(y, gamma, text=text, text_mask=mask, rewards=torch.full((2, 1), float("nan"))).velocity
        ref = bare(y, encoder_hidden_states=text[:, :-1], pooled_projections=text[:, -1, :20],
                   timestep=(1 - gamma) * 1000, return_dict=False)[0]
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    # another encoder's rows keep the stand-in (per row, in one batch); after padding, the token is found at each
    # row's last valid place
    plain = torch.randn(2, 86, 48)
    mixed, _, mixed_has = split_pooled(torch.cat([text[:1], plain[:1]]), mask, 20)
    assert mixed_has.tolist() == [True, False] and torch.equal(mixed[1], plain[0])
    with torch.no_grad():
        stand_in = trunk.stand_in(plain[:1], mask[:1])
        torch.testing.assert_close(trunk.pooled(torch.cat([text[:1], plain[:1]]), mask),
                                   torch.cat([text[:1, -1, :20], stand_in]))
    padded, padded_mask = torch.cat([text, torch.zeros(2, 3, 48)], 1), torch.cat([mask, torch.zeros(2, 3).bool()], 1)
    kept, kept_keep, found = split_pooled(padded, padded_mask, 20)
    assert found.all() and kept_keep.sum().item() == 2 * 88 and (kept[:, 85] == 0).all()
    torch.testing.assert_close(trunk.pooled(padded, padded_mask), pooled)


def sana_pipeline(folder):
    from diffusers import SanaPipeline
    from transformers import AutoModel, AutoTokenizer

    return SanaPipeline(tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer"),
                        text_encoder=AutoModel.from_pretrained(folder / "text_encoder").eval(),
                        vae=None, transformer=None, scheduler=None)


@pytest.mark.parametrize("instruction", [None, INSTRUCTION])
def test_sana_states_and_mask_are_the_pipelines(sana_dir, instruction):
    encoder = build_text_encoder({"kind": "sana_text", "name_or_path": str(sana_dir), "max_length": 6,
                                  "instruction": instruction})
    assert (encoder.dim, encoder.max_length) == (32, 6)
    emb, mask = encoder(CAPTIONS)
    assert emb.shape == (3, 6, 32) and emb.dtype == torch.float32
    with torch.no_grad():
        states, ref_mask, _, _ = sana_pipeline(sana_dir).encode_prompt(
            CAPTIONS, do_classifier_free_guidance=False, device=torch.device("cpu"), max_sequence_length=6,
            complex_human_instruction=[instruction] if instruction else None)
    assert torch.equal(mask, ref_mask.bool())
    torch.testing.assert_close(emb[mask], states[mask], atol=1e-5, rtol=1e-5)
    assert torch.equal(emb[~mask], torch.zeros_like(emb[~mask]))
    empty, empty_mask = encoder([""])  # the pipeline's negative prompt: no instruction
    with torch.no_grad():
        neg, neg_mask, _, _ = sana_pipeline(sana_dir).encode_prompt(
            [""], do_classifier_free_guidance=False, device=torch.device("cpu"), max_sequence_length=6,
            complex_human_instruction=None)
    assert torch.equal(empty_mask, neg_mask.bool())
    torch.testing.assert_close(empty[empty_mask], neg[empty_mask], atol=1e-5, rtol=1e-5)


def test_spec_save_and_reload(sana_dir, sd3_dir, tmp_path):
    for kind, folder in (("sana_text", sana_dir), ("sd3_text", sd3_dir)):
        encoder = build_text_encoder({"kind": kind, "name_or_path": str(folder), "max_length": 4, "dtype": "bf16"})
        encoder.save_pretrained(tmp_path / kind)
        assert sorted(p.name for p in (tmp_path / kind).iterdir()) == ["config.json"]
        assert json.loads((tmp_path / kind / "config.json").read_text()) == encoder.spec()
        loaded = TextEncoder.from_pretrained(tmp_path / kind)
        emb, _ = loaded(["a red circle"])
        assert emb.dtype == torch.float32 and loaded.models()[0].dtype == torch.bfloat16
        assert list(loaded.parameters()) == []


def test_one_line_errors(sana_dir, sd3_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="weights not found: /no/such"):
        build_text_encoder({"kind": "sd3_text", "name_or_path": "/no/such"})
    half = tmp_path / "half"
    shutil.copytree(sd3_dir / "text_encoder", half / "text_encoder")
    with pytest.raises(ValueError, match="SD3 text encoder folder .*half has no text_encoder_2/ folder"):
        build_text_encoder({"kind": "sd3_text", "name_or_path": str(half)}).load()
    with pytest.raises(ValueError, match=r"holds a clip_text_model model, not gemma2"):
        build_text_encoder({"kind": "sana_text", "name_or_path": str(sd3_dir)}).load()
    with pytest.raises(ValueError, match="holds a gemma2 model, not clip_text_model"):
        wrong = tmp_path / "wrong"
        for name in ("text_encoder", "text_encoder_2", "text_encoder_3"):
            (wrong / name).mkdir(parents=True)
            (wrong / name / "config.json").write_text((sana_dir / "text_encoder" / "config.json").read_text())
        build_text_encoder({"kind": "sd3_text", "name_or_path": str(wrong)}).load()
    with pytest.raises(ValueError, match="max_length must be a positive int"):
        build_text_encoder({"kind": "sana_text", "name_or_path": str(sana_dir), "max_length": 0})
    with pytest.raises(ValueError, match="unknown dtype"):
        build_text_encoder({"kind": "sana_text", "name_or_path": str(sana_dir), "dtype": "int8"})
