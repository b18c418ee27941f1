"""mmdet Mask2Former (GenEval's detector) -> transformers: key layouts, strict loading, and the three
non-trivial tensor changes proven numerically against mmdet's semantics written here from mmdet's code."""

import json

import pytest
import torch
import torch.nn.functional as F
from geneval_testkit import TINY, mmdet_relative_position_index, mmdet_state_dict

from mirokit.cli.main import main
from mirokit.evaluate.geneval_convert import convert_state_dict, relative_position_index
from mirokit.evaluate.geneval_data import load_object_names

NAMES = dict(enumerate(load_object_names()))


@pytest.fixture(scope="module")
def converted():
    source = mmdet_state_dict(seed=1)
    model, report = convert_state_dict(source, NAMES)
    return source, model, report


def test_both_mmdet_layouts_convert_to_the_same_strictly_loaded_model(converted):
    source, model, report = converted
    assert report["layout"] == "mmdet2" and report["source_tensors"] == len(source)
    assert report["config"] == {"swin_depths": [2, 2, 2, 2], "swin_heads": [1, 2, 2, 4], "embed_dim": 16,
                                "window_size": 7, "num_queries": 6, "num_labels": 80, "decoder_layers": 3,
                                "encoder_layers": 2}
    assert model.config.id2label[79] == "toothbrush" and model.config.num_attention_heads == TINY["msda_heads"]
    model3, report3 = convert_state_dict(mmdet_state_dict(seed=1, layout="mmdet3"), NAMES)
    assert report3["layout"] == "mmdet3"
    sd, sd3 = model.state_dict(), model3.state_dict()
    assert sd.keys() == sd3.keys() and all(torch.equal(sd[k], sd3[k]) for k in sd)
    # plain copies land where transformers reads them
    t = "model.transformer_module."
    pairs = {"panoptic_head.query_embed.weight": t + "queries_embedder.weight",
             "panoptic_head.query_feat.weight": t + "queries_features.weight",
             "panoptic_head.cls_embed.bias": "class_predictor.bias",
             "panoptic_head.mask_embed.4.weight": t + "decoder.mask_predictor.mask_embedder.2.0.weight",
             "panoptic_head.transformer_decoder.layers.2.norms.0.weight":
                 t + "decoder.layers.2.cross_attn_layer_norm.weight",
             "panoptic_head.transformer_decoder.layers.1.attentions.0.attn.in_proj_weight":
                 t + "decoder.layers.1.cross_attn.in_proj_weight",
             "panoptic_head.pixel_decoder.level_encoding.weight": "model.pixel_level_module.decoder.level_embed",
             "backbone.norm3.bias": "model.pixel_level_module.encoder.hidden_states_norms.stage4.bias"}
    for mm, hf in pairs.items():
        assert torch.equal(source[mm], sd[hf]), (mm, hf)
    with torch.no_grad():
        out = model(pixel_values=torch.randn(1, 3, 64, 96))
    assert out.class_queries_logits.shape == (1, 6, 81) and out.masks_queries_logits.shape == (1, 6, 16, 24)


def test_swin_patch_merging_unfold_order_matches_mmdet(converted):
    """mmdet PatchMerging: corner-pad, nn.Unfold(2, stride 2), LayerNorm(4C), Linear(4C, 2C, bias=False)."""
    source, model, _ = converted
    swin = model.model.pixel_level_module.encoder.swin
    for stage in (0, 2):
        merging = swin.encoder.layers[stage].downsample
        dim = TINY["embed"] * 2 ** stage
        for height, width in ((6, 10), (7, 9)):
            x = torch.randn(2, height * width, dim)
            y = x.view(2, height, width, dim).permute(0, 3, 1, 2)
            y = F.pad(y, (0, width % 2, 0, height % 2))                      # AdaptivePadding "corner"
            y = F.unfold(y, kernel_size=2, stride=2).transpose(1, 2)         # (B, L, 4C): c * 4 + 2 * dy + dx
            y = F.layer_norm(y, (4 * dim,), source[f"backbone.stages.{stage}.downsample.norm.weight"],
                             source[f"backbone.stages.{stage}.downsample.norm.bias"])
            expected = y @ source[f"backbone.stages.{stage}.downsample.reduction.weight"].T
            with torch.no_grad():
                got = merging(x, (height, width))
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_window_attention_fused_qkv_and_position_index_match_mmdet(converted):
    """mmdet WindowMSA: fused qkv -> heads, q * scale, + relative position bias (mmdet's own index), + mask."""
    source, model, _ = converted
    window = TINY["window"]
    assert torch.equal(mmdet_relative_position_index(window), relative_position_index(window))
    stage, block = 1, 1
    dim, heads = TINY["embed"] * 2, TINY["heads"][1]
    attention = model.model.pixel_level_module.encoder.swin.encoder.layers[stage].blocks[block].attention
    p = f"backbone.stages.{stage}.blocks.{block}.attn.w_msa."
    n = window * window
    x = torch.randn(4, n, dim)
    mask = torch.where(torch.rand(2, n, n) < 0.3, -100.0, 0.0)
    for m in (None, mask):
        qkv = F.linear(x, source[p + "qkv.weight"], source[p + "qkv.bias"]).reshape(4, n, 3, heads, dim // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = (q * (dim // heads) ** -0.5) @ k.transpose(-2, -1)
        table = source[p + "relative_position_bias_table"]
        bias = table[mmdet_relative_position_index(window).view(-1)].view(n, n, -1).permute(2, 0, 1)
        attn = attn + bias[None]
        if m is not None:
            attn = (attn.view(2, 2, heads, n, n) + m[None, :, None]).view(-1, heads, n, n)
        expected = F.linear((attn.softmax(-1) @ v).transpose(1, 2).reshape(4, n, dim),
                            source[p + "proj.weight"], source[p + "proj.bias"])
        with torch.no_grad():
            got, _ = attention(x, m)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_decoder_self_attention_in_proj_split_matches_nn_multihead_attention(converted):
    """mmdet's decoder self-attention is nn.MultiheadAttention on (query + pos, query + pos, query)."""
    source, model, _ = converted
    f = TINY["feat"]
    layer = model.model.transformer_module.decoder.layers[1]
    mha = torch.nn.MultiheadAttention(f, TINY["msda_heads"])
    p = "panoptic_head.transformer_decoder.layers.1.attentions.1.attn."
    mha.load_state_dict({"in_proj_weight": source[p + "in_proj_weight"], "in_proj_bias": source[p + "in_proj_bias"],
                         "out_proj.weight": source[p + "out_proj.weight"],
                         "out_proj.bias": source[p + "out_proj.bias"]})
    query, pos = torch.randn(6, 2, f), torch.randn(6, 2, f)  # (queries, batch, channels) as both use them
    with torch.no_grad():
        expected = mha(query + pos, query + pos, query)[0]
        got = layer.self_attn(hidden_states=query, position_embeddings=pos)[0]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_bad_state_dicts_are_one_line_errors():
    source = mmdet_state_dict()
    source["backbone.extra_layer.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"1 checkpoint key\(s\) have no transformers counterpart: backbone.extra"):
        convert_state_dict(source, NAMES)
    source = mmdet_state_dict()
    del source["panoptic_head.transformer_decoder.post_norm.weight"]
    with pytest.raises(ValueError, match="not found in the checkpoint: model.transformer_module.decoder.layernorm"):
        convert_state_dict(source, NAMES)
    source = mmdet_state_dict()
    source["backbone.stages.0.blocks.0.attn.w_msa.relative_position_index"] = torch.zeros(49, 49, dtype=torch.long)
    with pytest.raises(ValueError, match="relative_position_index differs"):
        convert_state_dict(source, NAMES)
    with pytest.raises(ValueError, match="checkpoint has no 'backbone.patch_embed.projection.weight'"):
        convert_state_dict({"foo": torch.zeros(1)}, NAMES)


class NotAllowed:  # pickled by reference: torch.load(weights_only=True) must refuse it
    pass


def test_cli_converts_a_pth_and_the_detector_loads_it(tmp_path, capsys):
    from mirokit.evaluate.geneval_convert import sha256
    from mirokit.evaluate.geneval_detector import Mask2FormerDetector

    src, out = tmp_path / "mask2former.pth", tmp_path / "converted"
    meta = {"CLASSES": tuple(NAMES.values()), "mmdet_version": "2.27.0", "epoch": 50}
    torch.save({"meta": meta, "state_dict": mmdet_state_dict(seed=2)}, src)
    assert main(["convert-geneval-detector", str(src), str(out)]) == 0
    assert "converted 253 tensors (mmdet2 layout)" in capsys.readouterr().out
    for name in ("config.json", "model.safetensors", "mirokit_geneval.json", "conversion.html", "conversion.png"):
        assert (out / name).is_file(), name
    marker = json.loads((out / "mirokit_geneval.json").read_text())
    assert marker["sha256"] == sha256(src) and marker["layout"] == "mmdet2" and len(marker["checkpoint_classes"]) == 80
    detector = Mask2FormerDetector(str(out)).load()
    assert detector.converted and detector.describe()["source"]["sha256"] == marker["sha256"]
    from PIL import Image

    dets = detector.detect([Image.new("RGB", (40, 30), (200, 10, 10))])[0]
    flat = [d for v in dets.values() for d in v]
    assert len(flat) == 100  # mmdet's max_per_image (query, class) pairs out of 6 x 80
    assert all(0 <= d.box[0] <= d.box[2] <= 40 and 0 <= d.box[1] <= d.box[3] <= 30 for d in flat)
    # bad inputs: missing file, a pickle that weights_only refuses, not a Mask2Former checkpoint
    torch.save({"state_dict": {"x": torch.zeros(1)}, "meta": NotAllowed()}, tmp_path / "evil.pth")
    torch.save({"state_dict": {"x": torch.zeros(1)}}, tmp_path / "other.pth")
    capsys.readouterr()
    for argv, expected in [
        ([str(tmp_path / "missing.pth"), str(out)], "checkpoint not found"),
        ([str(tmp_path / "evil.pth"), str(out)], "cannot be read with torch.load(weights_only=True)"),
        ([str(tmp_path / "other.pth"), str(out)], "not an mmdet Mask2Former Swin checkpoint"),
    ]:
        assert main(["convert-geneval-detector", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err
