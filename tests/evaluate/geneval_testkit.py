"""Tiny GenEval fixtures: an mmdet-layout Mask2Former state dict written from mmdet's module tree, a tiny
transformers Mask2Former with controlled outputs, a tiny CLIP (tests/rewards/clip_testkit), GenEval folders."""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rewards"))
from clip_testkit import clip_tokenizer, tiny_clip_model

TINY = dict(embed=16, depths=(2, 2, 2, 2), heads=(1, 2, 2, 4), window=7, feat=32, msda_heads=2, enc_layers=2,
            enc_ffn=48, dec_layers=3, dec_ffn=40, queries=6, classes=80, mask_dim=32)


def mmdet_relative_position_index(window: int) -> torch.Tensor:
    """mmdet WindowMSA's buffer: double_step_seq(2W - 1, W, 1, W), plus its transpose, flipped along dim 1."""
    seq1 = torch.arange(0, (2 * window - 1) * window, 2 * window - 1)
    seq2 = torch.arange(0, window, 1)
    coords = (seq1[:, None] + seq2[None, :]).reshape(1, -1)
    return (coords + coords.T).flip(1).contiguous()


def mmdet_state_dict(seed: int = 0, layout: str = "mmdet2", **overrides) -> dict:
    """Every tensor mmdet's Mask2Former (Swin backbone, config mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco,
    here at TINY sizes) puts in its state dict, named as mmdet names its modules, random values."""
    c = {**TINY, **overrides}
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def add(name, *shape):
        sd[name] = torch.randn(*shape, generator=g) * 0.2

    def linear(name, out, inp, bias=True):
        add(f"{name}.weight", out, inp)
        if bias:
            add(f"{name}.bias", out)

    def norm(name, dim):
        sd[f"{name}.weight"] = 1 + torch.randn(dim, generator=g) * 0.1
        add(f"{name}.bias", dim)

    # backbone: SwinTransformer(embed_dims, depths, num_heads, window_size, mlp_ratio=4, out_indices 0-3)
    e, w = c["embed"], c["window"]
    add("backbone.patch_embed.projection.weight", e, 3, 4, 4)
    add("backbone.patch_embed.projection.bias", e)
    norm("backbone.patch_embed.norm", e)
    for s, depth in enumerate(c["depths"]):
        dim = e * 2 ** s
        for b in range(depth):
            p = f"backbone.stages.{s}.blocks.{b}"
            norm(f"{p}.norm1", dim)
            add(f"{p}.attn.w_msa.relative_position_bias_table", (2 * w - 1) ** 2, c["heads"][s])
            sd[f"{p}.attn.w_msa.relative_position_index"] = mmdet_relative_position_index(w)
            linear(f"{p}.attn.w_msa.qkv", 3 * dim, dim)
            linear(f"{p}.attn.w_msa.proj", dim, dim)
            norm(f"{p}.norm2", dim)
            linear(f"{p}.ffn.layers.0.0", 4 * dim, dim)
            linear(f"{p}.ffn.layers.1", dim, 4 * dim)
        if s < len(c["depths"]) - 1:
            norm(f"backbone.stages.{s}.downsample.norm", 4 * dim)
            linear(f"backbone.stages.{s}.downsample.reduction", 2 * dim, 4 * dim, bias=False)
        norm(f"backbone.norm{s}", dim)
    # panoptic_head.pixel_decoder: MSDeformAttnPixelDecoder (GN convs, DetrTransformerEncoder of MSDA layers)
    f, ins = c["feat"], [e * 2 ** s for s in range(4)]
    pd = "panoptic_head.pixel_decoder"
    for i, level in enumerate((3, 2, 1)):
        add(f"{pd}.input_convs.{i}.conv.weight", f, ins[level], 1, 1)
        add(f"{pd}.input_convs.{i}.conv.bias", f)
        norm(f"{pd}.input_convs.{i}.gn", f)
    attn, ffn = ("attentions.0", "ffns.0") if layout == "mmdet2" else ("self_attn", "ffn")
    for layer in range(c["enc_layers"]):
        p = f"{pd}.encoder.layers.{layer}"
        linear(f"{p}.{attn}.sampling_offsets", c["msda_heads"] * 3 * 4 * 2, f)
        linear(f"{p}.{attn}.attention_weights", c["msda_heads"] * 3 * 4, f)
        linear(f"{p}.{attn}.value_proj", f, f)
        linear(f"{p}.{attn}.output_proj", f, f)
        linear(f"{p}.{ffn}.layers.0.0", c["enc_ffn"], f)
        linear(f"{p}.{ffn}.layers.1", f, c["enc_ffn"])
        norm(f"{p}.norms.0", f)
        norm(f"{p}.norms.1", f)
    add(f"{pd}.level_encoding.weight", 3, f)
    add(f"{pd}.lateral_convs.0.conv.weight", f, ins[0], 1, 1)
    norm(f"{pd}.lateral_convs.0.gn", f)
    add(f"{pd}.output_convs.0.conv.weight", f, f, 3, 3)
    norm(f"{pd}.output_convs.0.gn", f)
    add(f"{pd}.mask_feature.weight", c["mask_dim"], f, 1, 1)
    add(f"{pd}.mask_feature.bias", c["mask_dim"])
    # panoptic_head: queries, level embed, DetrTransformerDecoder (cross_attn, norm, self_attn, norm, ffn, norm)
    add("panoptic_head.query_embed.weight", c["queries"], f)
    add("panoptic_head.query_feat.weight", c["queries"], f)
    add("panoptic_head.level_embed.weight", 3, f)
    names = {"mmdet2": ("attentions.0", "attentions.1", "ffns.0"), "mmdet3": ("cross_attn", "self_attn", "ffn")}
    cross, selfa, ffn = names[layout]
    for layer in range(c["dec_layers"]):
        p = f"panoptic_head.transformer_decoder.layers.{layer}"
        for a in (cross, selfa):
            add(f"{p}.{a}.attn.in_proj_weight", 3 * f, f)
            add(f"{p}.{a}.attn.in_proj_bias", 3 * f)
            linear(f"{p}.{a}.attn.out_proj", f, f)
        linear(f"{p}.{ffn}.layers.0.0", c["dec_ffn"], f)
        linear(f"{p}.{ffn}.layers.1", f, c["dec_ffn"])
        for n in range(3):
            norm(f"{p}.norms.{n}", f)
    norm("panoptic_head.transformer_decoder.post_norm", f)
    linear("panoptic_head.cls_embed", c["classes"] + 1, f)
    linear("panoptic_head.mask_embed.0", f, f)
    linear("panoptic_head.mask_embed.2", f, f)
    linear("panoptic_head.mask_embed.4", c["mask_dim"], f)
    return sd


def tiny_mask2former(classes: dict[int, float] | None = None, seed: int = 0):
    """A tiny random transformers Mask2Former (Swin backbone, 80 labels, 6 queries). With `classes`
    {label: logit}, every query predicts those class logits (others 0, no-object 0) and a mask covering the
    whole image (logit = mask_feature_size), so detections are known in advance."""
    from transformers import Mask2FormerConfig, Mask2FormerForUniversalSegmentation, SwinConfig

    torch.manual_seed(seed)
    swin = SwinConfig(embed_dim=16, depths=[1, 1, 2, 1], num_heads=[1, 2, 2, 4], window_size=7, drop_path_rate=0.0,
                      out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(backbone_config=swin, use_timm_backbone=False, num_labels=80, num_queries=6,
                               hidden_dim=32, feature_size=32, mask_feature_size=32, encoder_feedforward_dim=48,
                               dim_feedforward=40, encoder_layers=1, decoder_layers=3, num_attention_heads=2)
    model = Mask2FormerForUniversalSegmentation(config).eval()
    if classes is not None:
        with torch.no_grad():
            model.class_predictor.weight.zero_()
            model.class_predictor.bias.zero_()
            for label, logit in classes.items():
                model.class_predictor.bias[label] = logit
            proj = model.model.pixel_level_module.decoder.mask_projection
            proj.weight.zero_()
            proj.bias.fill_(1.0)
            last = model.model.transformer_module.decoder.mask_predictor.mask_embedder.layers[2].layers[0]
            last.weight.zero_()
            last.bias.fill_(1.0)
    return model


def save_clip(directory) -> str:
    """The tests' tiny CLIP (random, with its tiny BPE tokenizer) saved like a hub folder."""
    tiny_clip_model().save_pretrained(str(directory))
    clip_tokenizer().save_pretrained(str(directory))
    return str(directory)


def write_folder(root: Path, prompts: list[dict], images: list[list]) -> Path:
    """A GenEval folder: prompt k -> root/0000k/metadata.jsonl and its PIL images as samples/0000.png ..."""
    for k, (record, ims) in enumerate(zip(prompts, images)):
        folder = root / f"{k:05d}"
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        (folder / "metadata.jsonl").write_text(json.dumps(record) + "\n")
        for i, im in enumerate(ims):
            im.save(folder / "samples" / f"{i:04d}.png")
    return root
