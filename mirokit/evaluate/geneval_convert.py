"""GenEval's mmdet Mask2Former checkpoint -> transformers' Mask2FormerForUniversalSegmentation (safetensors).

Source: `mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco` as mmdet saves it, in the mmdet 2.x layout
(`...transformer_decoder.layers.{i}.attentions.{0,1}.attn.*`, `.ffns.0.layers.*`: the file GenEval
downloads) or the mmdet 3.x one (`.cross_attn.attn.*`, `.self_attn.attn.*`, `.ffn.layers.*`). What changes
besides names (each proven numerically in tests/evaluate/test_geneval_convert.py):

- Swin PatchMerging: mmdet gathers each 2x2 patch with nn.Unfold, channel index c * 4 + (2 * dy + dx);
  transformers concatenates the four sub-grids, index k * C + c with k = (0,0), (1,0), (0,1), (1,1) for
  (dy, dx). The reduction's input columns and the LayerNorm's weight/bias are permuted accordingly;
- window attention: mmdet's fused qkv Linear (3C, C) splits into q, k, v (rows [0:C], [C:2C], [2C:3C]);
  mmdet's relative_position_index buffer is checked equal to transformers' and dropped;
- the decoder's self-attention (nn.MultiheadAttention, in_proj (3C, C)) splits into q/k/v projections;
  its cross-attention stays an nn.MultiheadAttention.

The architecture (Swin depths, heads, window, widths, queries, classes, layers) is read from the tensors'
shapes; heads of the pixel decoder come from its deformable attention (3 levels x 4 points, fixed in
transformers) and the transformer decoder uses the same number (8 in the config). Unmapped or missing
keys and shape mismatches are one-line errors naming the first few; the result loads with strict=True.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from mirokit.atomic import write_json_atomic

B = "model.pixel_level_module.encoder."
P = "model.pixel_level_module.decoder."
T = "model.transformer_module."
UNFOLD_TO_HF = (0, 2, 1, 3)
"""HF sub-grid k (dy, dx) = (0,0), (1,0), (0,1), (1,1) -> mmdet unfold position 2 * dy + dx"""
FILLED = (B + "swin.layernorm.weight", B + "swin.layernorm.bias", "criterion.empty_weight")
"""HF keys with no mmdet counterpart: SwinModel's final norm (unused by the backbone) and the loss weights"""


def unfold_reduction_to_hf(weight):
    """mmdet PatchMerging reduction (out, 4C), columns c * 4 + p -> transformers' (out, 4C), columns k * C + c."""
    out, four_c = weight.shape
    return weight.reshape(out, four_c // 4, 4)[:, :, list(UNFOLD_TO_HF)].transpose(1, 2).reshape(out, four_c)


def unfold_norm_to_hf(vector):
    """mmdet PatchMerging LayerNorm weight/bias (4C,), index c * 4 + p -> transformers' order k * C + c."""
    return vector.reshape(-1, 4)[:, list(UNFOLD_TO_HF)].transpose(0, 1).reshape(-1)


def relative_position_index(window: int):
    """Swin's relative position index (W*W, W*W), as transformers (and the original Swin) compute it."""
    import torch

    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def split_qkv(value, templates: dict[str, str]) -> dict:
    """A fused (3C, ...) q/k/v tensor -> {templates["q"]: rows [0:C], templates["k"]: [C:2C],
    templates["v"]: [2C:3C]}."""
    return {templates[p]: t.contiguous() for p, t in zip("qkv", value.chunk(3, dim=0))}


_SPLIT = "split_qkv"
_ONE = None  # plain copy

# (mmdet key regex, HF key template, transform). Groups: \1, \2 ... in the template as {1}, {2}.
_BLOCK = r"backbone\.stages\.(\d+)\.blocks\.(\d+)\."
_HB = B + "swin.encoder.layers.{1}.blocks.{2}."
_ENC = r"panoptic_head\.pixel_decoder\.encoder\.layers\.(\d+)\."
_DEC = r"panoptic_head\.transformer_decoder\.layers\.(\d+)\."
_HD = T + "decoder.layers.{1}."
RULES: list[tuple[str, str, object]] = [
    (r"backbone\.patch_embed\.projection\.(weight|bias)", B + "swin.embeddings.patch_embeddings.projection.{1}", _ONE),
    (r"backbone\.patch_embed\.norm\.(weight|bias)", B + "swin.embeddings.norm.{1}", _ONE),
    (_BLOCK + r"norm1\.(weight|bias)", _HB + "layernorm_before.{3}", _ONE),
    (_BLOCK + r"norm2\.(weight|bias)", _HB + "layernorm_after.{3}", _ONE),
    (_BLOCK + r"attn\.w_msa\.qkv\.(weight|bias)", _HB + "attention.{p}_proj.{3}", _SPLIT),
    (_BLOCK + r"attn\.w_msa\.proj\.(weight|bias)", _HB + "attention.o_proj.{3}", _ONE),
    (_BLOCK + r"attn\.w_msa\.relative_position_bias_table",
     _HB + "attention.relative_position_bias.relative_position_bias_table", _ONE),
    (_BLOCK + r"attn\.w_msa\.relative_position_index", "", "check_index"),
    (_BLOCK + r"ffn\.layers\.0\.0\.(weight|bias)", _HB + "mlp.fc1.{3}", _ONE),
    (_BLOCK + r"ffn\.layers\.1\.(weight|bias)", _HB + "mlp.fc2.{3}", _ONE),
    (r"backbone\.stages\.(\d+)\.downsample\.reduction\.weight",
     B + "swin.encoder.layers.{1}.downsample.reduction.weight", unfold_reduction_to_hf),
    (r"backbone\.stages\.(\d+)\.downsample\.norm\.(weight|bias)", B + "swin.encoder.layers.{1}.downsample.norm.{2}",
     unfold_norm_to_hf),
    (r"backbone\.norm(\d)\.(weight|bias)", B + "hidden_states_norms.stage{1+}.{2}", _ONE),
    (r"panoptic_head\.pixel_decoder\.input_convs\.(\d+)\.conv\.(weight|bias)", P + "input_projections.{1}.0.{2}", _ONE),
    (r"panoptic_head\.pixel_decoder\.input_convs\.(\d+)\.gn\.(weight|bias)", P + "input_projections.{1}.1.{2}", _ONE),
    (r"panoptic_head\.pixel_decoder\.level_encoding\.weight", P + "level_embed", _ONE),
    (_ENC + r"(?:attentions\.0|self_attn)\.(sampling_offsets|attention_weights|value_proj|output_proj)\.(weight|bias)",
     P + "encoder.layers.{1}.self_attn.{2}.{3}", _ONE),
    (_ENC + r"norms\.0\.(weight|bias)", P + "encoder.layers.{1}.self_attn_layer_norm.{2}", _ONE),
    (_ENC + r"norms\.1\.(weight|bias)", P + "encoder.layers.{1}.final_layer_norm.{2}", _ONE),
    (_ENC + r"(?:ffns\.0|ffn)\.layers\.0\.0\.(weight|bias)", P + "encoder.layers.{1}.fc1.{2}", _ONE),
    (_ENC + r"(?:ffns\.0|ffn)\.layers\.1\.(weight|bias)", P + "encoder.layers.{1}.fc2.{2}", _ONE),
    (r"panoptic_head\.pixel_decoder\.lateral_convs\.0\.conv\.weight", P + "adapter_1.0.weight", _ONE),
    (r"panoptic_head\.pixel_decoder\.lateral_convs\.0\.gn\.(weight|bias)", P + "adapter_1.1.{1}", _ONE),
    (r"panoptic_head\.pixel_decoder\.output_convs\.0\.conv\.weight", P + "layer_1.0.weight", _ONE),
    (r"panoptic_head\.pixel_decoder\.output_convs\.0\.gn\.(weight|bias)", P + "layer_1.1.{1}", _ONE),
    (r"panoptic_head\.pixel_decoder\.mask_feature\.(weight|bias)", P + "mask_projection.{1}", _ONE),
    (r"panoptic_head\.query_embed\.weight", T + "queries_embedder.weight", _ONE),
    (r"panoptic_head\.query_feat\.weight", T + "queries_features.weight", _ONE),
    (r"panoptic_head\.level_embed\.weight", T + "level_embed.weight", _ONE),
    (r"panoptic_head\.decoder_input_projs\.(\d+)\.(weight|bias)", T + "input_projections.{1}.{2}", _ONE),
    (_DEC + r"(?:attentions\.0|cross_attn)\.attn\.(in_proj_weight|in_proj_bias)", _HD + "cross_attn.{2}", _ONE),
    (_DEC + r"(?:attentions\.0|cross_attn)\.attn\.out_proj\.(weight|bias)", _HD + "cross_attn.out_proj.{2}", _ONE),
    (_DEC + r"(?:attentions\.1|self_attn)\.attn\.in_proj_(weight|bias)", _HD + "self_attn.{p}_proj.{2}", _SPLIT),
    (_DEC + r"(?:attentions\.1|self_attn)\.attn\.out_proj\.(weight|bias)", _HD + "self_attn.out_proj.{2}", _ONE),
    (_DEC + r"norms\.0\.(weight|bias)", _HD + "cross_attn_layer_norm.{2}", _ONE),
    (_DEC + r"norms\.1\.(weight|bias)", _HD + "self_attn_layer_norm.{2}", _ONE),
    (_DEC + r"norms\.2\.(weight|bias)", _HD + "final_layer_norm.{2}", _ONE),
    (_DEC + r"(?:ffns\.0|ffn)\.layers\.0\.0\.(weight|bias)", _HD + "fc1.{2}", _ONE),
    (_DEC + r"(?:ffns\.0|ffn)\.layers\.1\.(weight|bias)", _HD + "fc2.{2}", _ONE),
    (r"panoptic_head\.transformer_decoder\.post_norm\.(weight|bias)", T + "decoder.layernorm.{1}", _ONE),
    (r"panoptic_head\.cls_embed\.(weight|bias)", "class_predictor.{1}", _ONE),
    (r"panoptic_head\.mask_embed\.([024])\.(weight|bias)", T + "decoder.mask_predictor.mask_embedder.{1/2}.0.{2}",
     _ONE),
]
_COMPILED = [(re.compile(pattern + r"$"), template, fn) for pattern, template, fn in RULES]


def _fill(template: str, groups: tuple[str, ...], **extra) -> str:
    def sub(match):
        token = match.group(1)
        if token == "p":
            return extra["p"]
        if token.endswith("+"):
            return str(int(groups[int(token[:-1]) - 1]) + 1)
        if token.endswith("/2"):
            return str(int(groups[int(token[:-2]) - 1]) // 2)
        return groups[int(token) - 1]
    return re.sub(r"\{(p|\d+\+?|\d+/2)\}", sub, template)


def detect_layout(keys) -> str:
    """"mmdet2" (attentions.N / ffns.0 names), "mmdet3" (cross_attn / self_attn / ffn names) or "unknown"."""
    keys = list(keys)
    if any(".attentions." in k or ".ffns." in k for k in keys):
        return "mmdet2"
    if any(".cross_attn.attn." in k or "pixel_decoder.encoder.layers.0.self_attn." in k for k in keys):
        return "mmdet3"
    return "unknown"


def _first(names, n: int = 4) -> str:
    names = sorted(names)
    return ", ".join(names[:n]) + (f" (+{len(names) - n} more)" if len(names) > n else "")


def map_state_dict(source: dict, *, progress: bool = False) -> dict:
    """mmdet Mask2Former state dict -> transformers keys (without the FILLED ones). Unmapped keys raise."""
    from tqdm.auto import tqdm

    out, unmapped = {}, []
    for key in tqdm(sorted(source), desc="mapping", unit="tensor", disable=None if progress else True):
        if key.startswith("data_preprocessor."):
            continue
        value = source[key]
        for regex, template, fn in _COMPILED:
            m = regex.match(key)
            if not m:
                continue
            if fn == "check_index":
                window = int(round(value.numel() ** 0.25))
                if value.shape != (window * window, window * window) or \
                        not (value.long() == relative_position_index(window)).all():
                    raise ValueError(f"{key}: relative_position_index differs from Swin's (not a Swin checkpoint?)")
            elif fn == _SPLIT:
                out.update(split_qkv(value, {p: _fill(template, m.groups(), p=p) for p in "qkv"}))
            else:
                out[_fill(template, m.groups())] = (fn(value) if fn else value).contiguous()
            break
        else:
            unmapped.append(key)
    if unmapped:
        raise ValueError(f"{len(unmapped)} checkpoint key(s) have no transformers counterpart: {_first(unmapped)}")
    return out


def infer_config(source: dict, id2label: dict[int, str]):
    """The transformers Mask2FormerConfig (Swin backbone) matching an mmdet state dict's shapes."""
    from transformers import Mask2FormerConfig, SwinConfig

    def get(key):
        if key not in source:
            raise ValueError(f"checkpoint has no {key!r}: not an mmdet Mask2Former Swin checkpoint")
        return source[key]

    def count(pattern: str) -> int:
        regex = re.compile(pattern)
        return len({m.group(1) for k in source if (m := regex.match(k))})

    proj = get("backbone.patch_embed.projection.weight")
    embed_dim, patch = proj.shape[0], proj.shape[-1]
    stages = count(r"backbone\.stages\.(\d+)\.")
    depths = [count(rf"backbone\.stages\.{s}\.blocks\.(\d+)\.") for s in range(stages)]
    heads = [get(f"backbone.stages.{s}.blocks.0.attn.w_msa.relative_position_bias_table").shape[1]
             for s in range(stages)]
    window = int(round((get("backbone.stages.0.blocks.0.attn.w_msa.relative_position_bias_table").shape[0] ** 0.5
                        + 1) / 2))
    mlp_ratio = get("backbone.stages.0.blocks.0.ffn.layers.0.0.weight").shape[0] / embed_dim
    swin = SwinConfig(embed_dim=embed_dim, depths=depths, num_heads=heads, window_size=window, mlp_ratio=mlp_ratio,
                      patch_size=patch, qkv_bias="backbone.stages.0.blocks.0.attn.w_msa.qkv.bias" in source,
                      drop_path_rate=0.0, out_features=[f"stage{i + 1}" for i in range(stages)])
    def find(pattern: str) -> str | None:
        return next((k for k in sorted(source) if re.match(pattern + "$", k)), None)

    enc0, dec0 = _ENC.replace(r"(\d+)", "0"), _DEC.replace(r"(\d+)", "0")
    enc_attn = find(enc0 + r"(?:attentions\.0|self_attn)\.attention_weights\.weight")
    if enc_attn is None:
        raise ValueError("checkpoint has no pixel-decoder deformable attention: not an mmdet Mask2Former checkpoint")
    msda_heads, rest = divmod(source[enc_attn].shape[0], 3 * 4)
    if rest:
        raise ValueError(f"{enc_attn}: {source[enc_attn].shape[0]} outputs is not heads x 3 levels x 4 points")
    enc_ffn = find(enc0 + r"(?:ffns\.0|ffn)\.layers\.0\.0\.weight")
    dec_ffn = find(dec0 + r"(?:ffns\.0|ffn)\.layers\.0\.0\.weight")
    query = get("panoptic_head.query_feat.weight")
    num_labels = get("panoptic_head.cls_embed.weight").shape[0] - 1
    if len(id2label) != num_labels:
        raise ValueError(f"the checkpoint predicts {num_labels} classes but {len(id2label)} names were given")
    return Mask2FormerConfig(
        backbone_config=swin, use_timm_backbone=False, num_labels=num_labels,
        id2label={int(i): n for i, n in id2label.items()}, label2id={n: int(i) for i, n in id2label.items()},
        num_queries=query.shape[0], hidden_dim=query.shape[1],
        feature_size=get("panoptic_head.pixel_decoder.level_encoding.weight").shape[1],
        mask_feature_size=get("panoptic_head.pixel_decoder.mask_feature.weight").shape[0],
        num_attention_heads=msda_heads,
        encoder_layers=count(_ENC), decoder_layers=count(_DEC) + 1,
        encoder_feedforward_dim=get(enc_ffn).shape[0] if enc_ffn else 1024,
        dim_feedforward=get(dec_ffn).shape[0] if dec_ffn else 2048,
        enforce_input_projection=any(k.startswith("panoptic_head.decoder_input_projs.") for k in source),
    )


def load_mmdet_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """A .pth via torch.load(weights_only=True) -> (state dict of tensors, meta dict or {})."""
    import pickle

    import numpy as np
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    allowed = [np.dtype, np.ndarray, *(type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "bool"))]
    import importlib

    # numpy >= 2 keeps these in numpy._core (a numpy 1.26 has an unrelated, partial numpy._core)
    multiarray = importlib.import_module("numpy._core.multiarray" if int(np.__version__.split(".")[0]) >= 2
                                         else "numpy.core.multiarray")
    allowed += [multiarray.scalar, multiarray._reconstruct]
    try:
        with torch.serialization.safe_globals(allowed):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{path}: cannot be read with torch.load(weights_only=True): {first}") from None
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(ckpt).__name__}")
    meta = ckpt.get("meta") if isinstance(ckpt.get("meta"), dict) else {}
    state = ckpt["state_dict"] if isinstance(ckpt.get("state_dict"), dict) else ckpt
    state = {k: v for k, v in state.items() if k != "meta"}
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{path}: state dict entries that are not tensors: {_first(bad)}")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state, meta


def checkpoint_classes(meta: dict) -> list[str] | None:
    """Class names stored in an mmdet checkpoint's meta (2.x "CLASSES", 3.x "dataset_meta.classes"), if any."""
    classes = meta.get("CLASSES") or (meta.get("dataset_meta") or {}).get("classes")
    return list(classes) if classes else None


def convert_state_dict(source: dict, id2label: dict[int, str], *, progress: bool = False):
    """mmdet state dict -> (transformers model with the weights loaded strictly, report dict)."""
    import torch
    from transformers import Mask2FormerForUniversalSegmentation

    config = infer_config(source, id2label)
    mapped = map_state_dict(source, progress=progress)
    model = Mask2FormerForUniversalSegmentation(config).eval()
    expected = model.state_dict()
    missing = [k for k in expected if k not in mapped and k not in FILLED]
    if missing:
        raise ValueError(f"{len(missing)} transformers key(s) not found in the checkpoint: {_first(missing)}")
    extra = [k for k in mapped if k not in expected]
    if extra:
        raise ValueError(f"{len(extra)} mapped key(s) unknown to transformers' model: {_first(extra)}")
    for key, value in mapped.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(f"{key}: checkpoint shape {tuple(value.shape)} "
                             f"!= model shape {tuple(expected[key].shape)}")
    full = dict(mapped)
    full[B + "swin.layernorm.weight"] = torch.ones_like(expected[B + "swin.layernorm.weight"])
    full[B + "swin.layernorm.bias"] = torch.zeros_like(expected[B + "swin.layernorm.bias"])
    full["criterion.empty_weight"] = expected["criterion.empty_weight"].clone()
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in full.items()}, strict=True)
    groups: dict[str, int] = {}
    for key, value in mapped.items():
        part = ("backbone" if key.startswith(B) else "pixel decoder" if key.startswith(P)
                else "transformer decoder" if key.startswith(T) else "class head")
        groups[part] = groups.get(part, 0) + value.numel()
    report = {"layout": detect_layout(source), "source_tensors": len(source), "model_tensors": len(full),
              "parameters": groups, "config": {"swin_depths": config.backbone_config.depths,
                                              "swin_heads": config.backbone_config.num_heads,
                                              "embed_dim": config.backbone_config.embed_dim,
                                              "window_size": config.backbone_config.window_size,
                                              "num_queries": config.num_queries, "num_labels": config.num_labels,
                                              "decoder_layers": config.decoder_layers - 1,
                                              "encoder_layers": config.encoder_layers}}
    return model, report


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert_checkpoint(src: str | Path, out: str | Path, *, progress: bool = True) -> dict:
    """SRC.pth (mmdet) -> OUT/config.json + model.safetensors + mirokit_geneval.json (the report); returns it."""
    from mirokit import __version__
    from mirokit.evaluate.geneval_data import load_object_names
    from mirokit.evaluate.geneval_detector import CONVERTED_MARKER

    state, meta = load_mmdet_checkpoint(src)
    names = load_object_names()
    stored = checkpoint_classes(meta)
    if stored is not None and len(stored) != len(names):
        raise ValueError(f"{src}: the checkpoint's meta lists {len(stored)} classes, GenEval's detector has 80")
    model, report = convert_state_dict(state, dict(enumerate(names)), progress=progress)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    report = {"source": str(Path(src).resolve()), "sha256": sha256(src), **report,
              "class_names": "GenEval object_names.txt (label i = line i)",
              "checkpoint_classes": stored, "mirokit_version": __version__}
    write_json_atomic(out / CONVERTED_MARKER, report)
    return report
