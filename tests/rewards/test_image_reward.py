"""ImageReward on tiny random BLIP weights: original layout -> converter -> scorer vs a by-hand forward."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "circle", "on", "blue", "square", "big",
         "the", "green", "triangle"]
V_WIDTH, V_DEPTH, V_HEADS, PATCH, IMAGE = 128, 2, 2, 8, 16  # heads = width // 64, as inferred
T_WIDTH, T_DEPTH, T_HEADS, T_VOCAB, T_POS = 32, 2, 4, len(WORDS) + 2, 40
MED = {"hidden_size": T_WIDTH, "num_hidden_layers": T_DEPTH, "num_attention_heads": T_HEADS,
       "intermediate_size": 64, "vocab_size": T_VOCAB, "max_position_embeddings": T_POS,
       "layer_norm_eps": 1e-12, "hidden_act": "gelu", "pad_token_id": 0, "encoder_width": 768,
       "add_cross_attention": True}
CAPTIONS = ["a red circle", "the big blue square on a green triangle", "a", "green green green",
            "unknown words here"]


def make_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    core = Tokenizer(models.WordPiece({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return BertTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                             sep_token="[SEP]", mask_token="[MASK]")


def original_state_dict(seed: int = 0) -> dict:
    """Random weights in their layout: `blip.visual_encoder.*` (timm ViT), `blip.text_encoder.*` (BLIP med
    BERT with cross-attention), unused ITC projections, `mlp.layers.*`."""
    from transformers import BlipTextConfig, BlipTextModel

    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    def norm(prefix):
        return {f"{prefix}.weight": 1 + rnd(V_WIDTH, scale=0.1), f"{prefix}.bias": rnd(V_WIDTH, scale=0.1)}

    v = "blip.visual_encoder."
    sd = {v + "cls_token": rnd(1, 1, V_WIDTH), v + "pos_embed": rnd(1, (IMAGE // PATCH) ** 2 + 1, V_WIDTH),
          v + "patch_embed.proj.weight": rnd(V_WIDTH, 3, PATCH, PATCH, scale=0.05),
          v + "patch_embed.proj.bias": rnd(V_WIDTH), **norm(v + "norm")}
    for i in range(V_DEPTH):
        b = f"{v}blocks.{i}."
        sd.update({**norm(b + "norm1"), **norm(b + "norm2"),
                   b + "attn.qkv.weight": rnd(3 * V_WIDTH, V_WIDTH), b + "attn.qkv.bias": rnd(3 * V_WIDTH),
                   b + "attn.proj.weight": rnd(V_WIDTH, V_WIDTH), b + "attn.proj.bias": rnd(V_WIDTH),
                   b + "mlp.fc1.weight": rnd(4 * V_WIDTH, V_WIDTH), b + "mlp.fc1.bias": rnd(4 * V_WIDTH),
                   b + "mlp.fc2.weight": rnd(V_WIDTH, 4 * V_WIDTH), b + "mlp.fc2.bias": rnd(V_WIDTH)})
    text_cfg = BlipTextConfig(**{k: MED[k] for k in MED if k not in ("encoder_width", "add_cross_attention")},
                              encoder_hidden_size=V_WIDTH, is_decoder=True, bos_token_id=None, sep_token_id=None)
    for k, t in BlipTextModel(text_cfg, add_pooling_layer=False).state_dict().items():
        sd["blip.text_encoder." + k] = (1 + rnd(*t.shape, scale=0.1)) if "LayerNorm.weight" in k else rnd(*t.shape)
    sd["blip.text_encoder.embeddings.position_ids"] = torch.arange(T_POS).expand(1, -1)
    sd["blip.vision_proj.weight"], sd["blip.text_proj.weight"] = rnd(256, V_WIDTH), rnd(256, T_WIDTH)
    dims = (T_WIDTH, 1024, 128, 64, 16, 1)
    for j, idx in enumerate((0, 2, 4, 6, 7)):
        sd[f"mlp.layers.{idx}.weight"] = rnd(dims[j + 1], dims[j], scale=1 / dims[j] ** 0.5)
        sd[f"mlp.layers.{idx}.bias"] = rnd(dims[j + 1], scale=0.1)
    return sd


def reference_rewards(sd: dict, pixels: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Their forward written out from the original-layout tensors (timm ViT by hand)."""
    from transformers import BlipTextConfig, BlipTextModel

    v = lambda name: sd["blip.visual_encoder." + name]
    x = F.conv2d(pixels, v("patch_embed.proj.weight"), v("patch_embed.proj.bias"), stride=PATCH)
    x = torch.cat([v("cls_token").expand(len(x), -1, -1), x.flatten(2).transpose(1, 2)], 1) + v("pos_embed")
    B, N, D = x.shape
    for i in range(V_DEPTH):
        p = lambda name, i=i: v(f"blocks.{i}.{name}")
        h = F.layer_norm(x, (D,), p("norm1.weight"), p("norm1.bias"), 1e-6)
        q, k, val = F.linear(h, p("attn.qkv.weight"), p("attn.qkv.bias")).reshape(
            B, N, 3, V_HEADS, D // V_HEADS).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-2, -1)) * (D // V_HEADS) ** -0.5).softmax(-1) @ val
        x = x + F.linear(a.transpose(1, 2).reshape(B, N, D), p("attn.proj.weight"), p("attn.proj.bias"))
        h = F.layer_norm(x, (D,), p("norm2.weight"), p("norm2.bias"), 1e-6)
        x = x + F.linear(F.gelu(F.linear(h, p("mlp.fc1.weight"), p("mlp.fc1.bias"))), p("mlp.fc2.weight"),
                         p("mlp.fc2.bias"))
    image_embeds = F.layer_norm(x, (D,), v("norm.weight"), v("norm.bias"), 1e-6)
    text_cfg = BlipTextConfig(**{k: MED[k] for k in MED if k not in ("encoder_width", "add_cross_attention")},
                              encoder_hidden_size=V_WIDTH, is_decoder=True, bos_token_id=None, sep_token_id=None)
    text = BlipTextModel(text_cfg, add_pooling_layer=False).eval()
    prefix = "blip.text_encoder."
    text.load_state_dict({k[len(prefix):]: t for k, t in sd.items() if k.startswith(prefix)}, strict=False)
    feats = text(input_ids=ids, attention_mask=mask, encoder_hidden_states=image_embeds,
                 encoder_attention_mask=torch.ones(B, N, dtype=torch.long)).last_hidden_state[:, 0]
    for idx in (0, 2, 4, 6, 7):
        feats = F.linear(feats, sd[f"mlp.layers.{idx}.weight"], sd[f"mlp.layers.{idx}.bias"])
    return (feats.squeeze(-1) - 0.16717362830052426) / 1.0333394966054072


def make_images(n: int = 5):
    rng = np.random.default_rng(0)
    sizes = [(16, 16), (40, 24), (24, 41), (33, 33), (20, 16)]
    modes = ["RGB", "RGB", "RGBA", "L", "RGB"]
    out = []
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        out.append(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(modes[i % len(modes)]))
    return out


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from mirokit.rewards.image_reward_model import convert_image_reward_checkpoint

    raw = tmp_path_factory.mktemp("raw")
    sd = original_state_dict()
    torch.save(sd, raw / "ImageReward.pt")
    (raw / "med_config.json").write_text(json.dumps(MED))
    tok_dir = tmp_path_factory.mktemp("tok")
    make_tokenizer().save_pretrained(tok_dir)
    out = convert_image_reward_checkpoint(raw / "ImageReward.pt", tmp_path_factory.mktemp("conv"),
                                          tokenizer=make_tokenizer())
    return {"sd": sd, "raw": raw, "tok": tok_dir, "out": out}


def test_convert_scores_match_reference(converted):
    from mirokit.rewards import build_scorer
    from mirokit.rewards.image_reward import preprocess_image_reward
    from mirokit.rewards.image_reward_model import load_blip_tokenizer

    files = {p.name for p in converted["out"].iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
    scorer = build_scorer("image_reward_score", model=str(converted["out"]), batch_size=4)
    images = make_images()
    scores = scorer.score(images, CAPTIONS)
    assert scores.shape == (5,) and scores.dtype == np.float32 and np.isfinite(scores).all()
    tok = load_blip_tokenizer(make_tokenizer())
    enc = tok(CAPTIONS, padding="max_length", truncation=True, max_length=35, return_tensors="pt")
    assert enc.input_ids.shape == (5, 35) and (enc.input_ids[:, 0] == 2).all()  # [CLS] kept
    with torch.no_grad():
        ref = reference_rewards(converted["sd"], preprocess_image_reward(images, IMAGE), enc.input_ids,
                                enc.attention_mask)
    np.testing.assert_allclose(scores, ref.numpy(), rtol=1e-4, atol=1e-5)
    assert scores.std() > 1e-3  # the images/captions are told apart


def test_batch_invariance_determinism_and_in_memory_conversion(converted):
    from mirokit.rewards import build_scorer

    images = make_images()
    one = build_scorer("image_reward_score", model=str(converted["out"]), batch_size=1).score(images, CAPTIONS)
    four = build_scorer("image_reward_score", model=str(converted["out"]), batch_size=4)
    np.testing.assert_allclose(four.score(images, CAPTIONS), one, atol=1e-5)
    np.testing.assert_array_equal(four.score(images, CAPTIONS), four.score(images, CAPTIONS))
    raw = build_scorer("image_reward_score", model=str(converted["raw"]), tokenizer=str(converted["tok"]))
    np.testing.assert_allclose(raw.score(images, CAPTIONS), one, atol=1e-5)


def test_preprocessing_geometry():
    from mirokit.rewards.image_reward import (
        CLIP_MEAN,
        CLIP_STD,
        preprocess_image_reward,
    )

    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (24, 43, 3), dtype=np.uint8))  # w=43, h=24
    got = preprocess_image_reward([image], 16)
    assert got.shape == (1, 3, 16, 16) and got.dtype == torch.float32
    resized = image.resize((28, 16), Image.Resampling.BICUBIC)  # int(16 * 43 / 24) = 28
    expected = np.asarray(resized.crop((6, 0, 22, 16)), dtype=np.float32) / 255  # round(6.0) = 6
    expected = (expected - np.array(CLIP_MEAN, dtype=np.float32)) / np.array(CLIP_STD, dtype=np.float32)
    np.testing.assert_allclose(got[0].permute(1, 2, 0).numpy(), expected, atol=1e-6)


def test_bad_inputs_one_line_errors(converted, tmp_path):
    from mirokit.rewards import build_scorer
    from mirokit.rewards.image_reward_model import convert_image_reward

    with pytest.raises(FileNotFoundError, match="image_reward_score"):
        build_scorer("image_reward_score", model=str(tmp_path / "missing"))
    scorer = build_scorer("image_reward_score", model=str(converted["out"]))
    with pytest.raises(TypeError, match="caption 1"):
        scorer.score(make_images(2), ["a", 3])
    with pytest.raises(TypeError, match="image 0"):
        scorer.score([np.zeros((4, 4, 3))], ["a"])
    sd = dict(converted["sd"])
    del sd["blip.visual_encoder.blocks.1.attn.proj.bias"]
    with pytest.raises(ValueError, match="layers.1.self_attn.projection.bias"):
        convert_image_reward(sd, MED, vision_heads=V_HEADS)
    with pytest.raises(FileNotFoundError, match="neither config.json nor ImageReward.pt"):
        build_scorer("image_reward_score", model=str(tmp_path)).load()
