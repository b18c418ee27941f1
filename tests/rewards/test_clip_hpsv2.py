"""hpsv2_score: an open_clip-layout checkpoint converted to transformers CLIPModel scores like open_clip does.

The open_clip side is written out here independently: its state-dict layout and its forward pass
(nn.MultiheadAttention-style packed in_proj, x @ proj, EOT = argmax token id, causal text mask)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from clip_testkit import (
    CAPTIONS,
    check_scorer_basics,
    clip_tokenizer,
    images,
    reference_pixels,
    save_clip_folder,
    tiny_clip_model,
)

from mirokit.rewards import build_scorer
from mirokit.rewards.clip_convert import (
    convert_hpsv2,
    convert_open_clip_to_transformers,
    open_clip_config,
)

W, HEADS, PATCH, GRID, LAYERS, EMBED, CTX = 32, 4, 8, 4, 2, 16, 77
TINY = {"vision_head_width": W // HEADS, "text_head_width": W // HEADS}


def open_clip_state_dict(vocab: int, seed: int = 0) -> dict:
    """Random weights in open_clip's ViT CLIP layout (the layout of HPS_v2.1_compressed.pt's "state_dict")."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, s=0.2):
        return torch.randn(*shape, generator=g) * s

    def ln(prefix):
        return {prefix + ".weight": 1 + r(W, s=0.1), prefix + ".bias": r(W, s=0.1)}

    def blocks(prefix):
        sd = {}
        for i in range(LAYERS):
            p = f"{prefix}transformer.resblocks.{i}."
            sd.update({**ln(p + "ln_1"), **ln(p + "ln_2")})
            sd.update({p + "attn.in_proj_weight": r(3 * W, W), p + "attn.in_proj_bias": r(3 * W),
                       p + "attn.out_proj.weight": r(W, W), p + "attn.out_proj.bias": r(W),
                       p + "mlp.c_fc.weight": r(2 * W, W), p + "mlp.c_fc.bias": r(2 * W),
                       p + "mlp.c_proj.weight": r(W, 2 * W), p + "mlp.c_proj.bias": r(W)})
        return sd

    sd = {"visual.conv1.weight": r(W, 3, PATCH, PATCH), "visual.class_embedding": r(W),
          "visual.positional_embedding": r(GRID * GRID + 1, W), "visual.proj": r(W, EMBED),
          **ln("visual.ln_pre"), **ln("visual.ln_post"), **blocks("visual."),
          "token_embedding.weight": r(vocab, W), "positional_embedding": r(CTX, W), **ln("ln_final"),
          "text_projection": r(W, EMBED), "logit_scale": torch.tensor(4.6052), **blocks(""),
          "attn_mask": torch.full((CTX, CTX), float("-inf")).triu(1)}
    return sd


def _block(x, sd, p, mask=None):
    h = F.layer_norm(x, (W,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], 1e-5).transpose(0, 1)
    a, _ = F.multi_head_attention_forward(
        h, h, h, W, HEADS, sd[p + "attn.in_proj_weight"], sd[p + "attn.in_proj_bias"], None, None, False, 0.0,
        sd[p + "attn.out_proj.weight"], sd[p + "attn.out_proj.bias"], training=False, need_weights=False,
        attn_mask=mask)
    x = x + a.transpose(0, 1)
    h = F.layer_norm(x, (W,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], 1e-5)
    h = F.linear(F.gelu(F.linear(h, sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"])),
                 sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"])
    return x + h


def open_clip_features(sd, pixels, ids):
    """open_clip's encode_image / encode_text, normalised: (N, E), (N, E)."""
    x = F.conv2d(pixels, sd["visual.conv1.weight"], stride=PATCH).flatten(2).transpose(1, 2)  # (N, G*G, W)
    x = torch.cat([sd["visual.class_embedding"].expand(x.shape[0], 1, W), x], 1) + sd["visual.positional_embedding"]
    x = F.layer_norm(x, (W,), sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"], 1e-5)
    for i in range(LAYERS):
        x = _block(x, sd, f"visual.transformer.resblocks.{i}.")
    img = F.layer_norm(x[:, 0], (W,), sd["visual.ln_post.weight"], sd["visual.ln_post.bias"], 1e-5) @ sd["visual.proj"]
    t = sd["token_embedding.weight"][ids] + sd["positional_embedding"]
    for i in range(LAYERS):
        t = _block(t, sd, f"transformer.resblocks.{i}.", mask=sd["attn_mask"])
    t = F.layer_norm(t, (W,), sd["ln_final.weight"], sd["ln_final.bias"], 1e-5)
    txt = t[torch.arange(t.shape[0]), ids.argmax(-1)] @ sd["text_projection"]
    return F.normalize(img, dim=-1), F.normalize(txt, dim=-1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("hps")
    sd = open_clip_state_dict(len(clip_tokenizer()))
    pt = d / "HPS_tiny.pt"
    torch.save({"state_dict": sd}, pt)  # fixture creation; the scorer reads it with weights_only=True
    processor = save_clip_folder(d / "processor", tiny_clip_model())  # tokenizer + 32 px image processor
    return sd, pt, processor, d


def reference_scores(sd, imgs, caps):
    ids = clip_tokenizer()(caps, padding="max_length", truncation=True, max_length=CTX,
                           return_tensors="pt")["input_ids"]
    with torch.no_grad():
        img, txt = open_clip_features(sd, reference_pixels(tiny_clip_model(), imgs), ids)
    return (img * txt).sum(-1).numpy()


def test_pt_file_scores_like_open_clip(setup):
    sd, pt, processor, _ = setup
    scorer = build_scorer("hpsv2_score", model=str(pt), processor=processor, **TINY)
    a = check_scorer_basics(scorer)
    np.testing.assert_allclose(a, reference_scores(sd, images(), CAPTIONS), rtol=1e-4, atol=1e-5)


def test_converted_folder_and_checkpoint_folder_agree(setup, tmp_path):
    sd, pt, processor, _ = setup
    ref = build_scorer("hpsv2_score", model=str(pt), processor=processor, **TINY).score(images(4), CAPTIONS[:4])
    out = convert_hpsv2(pt, tmp_path / "hpsv2", processor=processor, **TINY)
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json"} <= {
        p.name for p in out.iterdir()}
    np.testing.assert_allclose(build_scorer("hpsv2_score", model=str(out)).score(images(4), CAPTIONS[:4]), ref,
                               rtol=1e-5, atol=1e-6)
    snapshot = tmp_path / "snapshot"  # a folder holding the published file name (e.g. a hub snapshot)
    snapshot.mkdir()
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}, "epoch": 3},
               snapshot / "HPS_v2.1_compressed.pt")
    np.testing.assert_allclose(build_scorer("hpsv2_score", model=str(snapshot), processor=processor, **TINY).score(
        images(4), CAPTIONS[:4]), ref, rtol=1e-5, atol=1e-6)


def test_round_trip_mapping_is_complete(setup):
    sd = setup[0]
    converted = convert_open_clip_to_transformers(sd, open_clip_config(sd, **TINY))
    back = {}  # the inverse mapping, written independently of the converter's tables
    names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj",
             "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
    for tower, prefix in (("vision_model", "visual."), ("text_model", "")):
        for i in range(LAYERS):
            t, o = f"{tower}.encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
            for kind in ("weight", "bias"):
                back[o + f"attn.in_proj_{kind}"] = torch.cat([converted[t + f"self_attn.{n}_proj.{kind}"]
                                                              for n in "qkv"])
                for new, old in names.items():
                    back[o + f"{old}.{kind}"] = converted[t + f"{new}.{kind}"]
    back["visual.proj"] = converted["visual_projection.weight"].T
    back["text_projection"] = converted["text_projection.weight"].T
    v, tm = "vision_model.", "text_model."
    for old, new in {"visual.conv1.weight": v + "embeddings.patch_embedding.weight",
                     "visual.class_embedding": v + "embeddings.class_embedding",
                     "visual.positional_embedding": v + "embeddings.position_embedding.weight",
                     "token_embedding.weight": tm + "embeddings.token_embedding.weight",
                     "positional_embedding": tm + "embeddings.position_embedding.weight",
                     "logit_scale": "logit_scale"}.items():
        back[old] = converted[new]
    for old, new in (("visual.ln_pre", v + "pre_layrnorm"), ("visual.ln_post", v + "post_layernorm"),
                     ("ln_final", tm + "final_layer_norm")):
        back[old + ".weight"], back[old + ".bias"] = converted[new + ".weight"], converted[new + ".bias"]
    expected = {k: t for k, t in sd.items() if k != "attn_mask"}
    assert sorted(back) == sorted(expected)
    for k, t in expected.items():
        torch.testing.assert_close(back[k], t, rtol=0, atol=0)


def test_vit_h14_geometry_is_read_from_shapes():
    """Published ViT-H-14 (HPSv2): vision 32 x 1280 (head width 80), text 24 x 1024, patch 14, embed 1024."""
    m = "meta"
    sd = {"visual.conv1.weight": torch.empty(1280, 3, 14, 14, device=m),
          "visual.positional_embedding": torch.empty(257, 1280, device=m),
          "visual.proj": torch.empty(1280, 1024, device=m),
          "token_embedding.weight": torch.empty(49408, 1024, device=m),
          "positional_embedding": torch.empty(77, 1024, device=m),
          "text_projection": torch.empty(1024, 1024, device=m)}
    sd.update({f"visual.transformer.resblocks.{i}.mlp.c_fc.weight": torch.empty(5120, 1280, device=m)
               for i in range(32)})
    sd.update({f"transformer.resblocks.{i}.mlp.c_fc.weight": torch.empty(4096, 1024, device=m) for i in range(24)})
    c = open_clip_config(sd, vision_head_width=80, text_head_width=64)
    v, t = c.vision_config, c.text_config
    assert (v.hidden_size, v.num_hidden_layers, v.num_attention_heads, v.patch_size, v.image_size) == (
        1280, 32, 16, 14, 224)
    assert (t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.vocab_size, t.eos_token_id) == (
        1024, 24, 16, 49408, 49407)
    assert c.projection_dim == 1024 and v.hidden_act == t.hidden_act == "gelu"


def test_conversion_errors_name_the_key(setup, tmp_path):
    sd = setup[0]
    config = open_clip_config(sd, **TINY)
    with pytest.raises(ValueError, match="unsupported key 'visual.transformer.resblocks.0.ls_1.gamma'"):
        convert_open_clip_to_transformers({**sd, "visual.transformer.resblocks.0.ls_1.gamma": torch.ones(W)}, config)
    with pytest.raises(ValueError, match="missing weights for text_model.final_layer_norm.bias"):
        convert_open_clip_to_transformers({k: t for k, t in sd.items() if k != "ln_final.bias"}, config)
    with pytest.raises(FileNotFoundError, match="hpsv2_score: .* holds neither config.json"):
        build_scorer("hpsv2_score", model=str(tmp_path)).score(images(1), ["a"])
