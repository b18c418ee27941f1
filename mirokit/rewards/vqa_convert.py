"""Convert the published CLIP-FlanT5 checkpoint (zhiqiulin/clip-flant5-xxl) to our folder layout.

Their folder: config.json (a T5Config with model_type "clip_t5" plus mm_vision_tower,
mm_projector_type, mm_hidden_size, mm_vision_select_layer, mm_vision_select_feature, ...) and weights
(pytorch_model*.bin or model*.safetensors, sharded with an index) whose keys are
- T5ForConditionalGeneration's: shared.*, encoder.*, decoder.*, lm_head.* (encoder/decoder.embed_tokens
  are tied copies of shared.weight and are dropped);
- vision_tower.vision_tower.vision_model.* (CLIPVisionModel, kept as vision_model.*);
- mm_projector.{0,2}.* (mlp2x_gelu).
If the vision tower weights are absent, pass `vision_tower=` a local openai/clip-vit-large-patch14-336
folder (its vision_model.* keys are taken). Shards are converted one at a time (.bin through
torch.load(weights_only=True, mmap=True)), so memory stays near one shard.
"""

import json
from pathlib import Path

import torch

from mirokit.atomic import write_json_atomic
from mirokit.rewards.vqa_model import CLIPT5Config

# openai/clip-vit-large-patch14-336 vision config (the tower of clip-flant5-xxl / -xl)
CLIP_VIT_L14_336 = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
                    "patch_size": 14, "image_size": 336, "projection_dim": 768, "hidden_act": "quick_gelu",
                    "layer_norm_eps": 1e-5, "num_channels": 3}
_NOT_T5 = ("use_mm_proj", "image_aspect_ratio", "image_grid_pinpoints", "freeze_mm_mlp_adapter", "tune_mm_mlp_adapter",
           "pretrain_mm_mlp_adapter", "auto_map", "_name_or_path", "transformers_version", "torch_dtype", "dtype")
_EMBED_COPIES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")


def map_clip_t5_key(key: str) -> tuple[str, str] | None:
    """Their key -> (part, our key) with part in vision_tower / mm_projector / language_model; None for
    buffers and tied embedding copies; an unknown key is a one-line error."""
    if key.endswith("position_ids") or key in _EMBED_COPIES:
        return None
    if key.startswith("vision_tower.vision_tower."):
        return "vision_tower", key[len("vision_tower.vision_tower."):]
    if key.startswith("mm_projector."):
        return "mm_projector", key[len("mm_projector."):]
    if key.startswith(("shared.", "encoder.", "decoder.", "lm_head.")):
        return "language_model", key
    raise ValueError(f"unexpected CLIP-T5 checkpoint key {key!r}")


def _vision_config_from(source) -> dict:
    """A dict, or a folder / config.json of a CLIPModel or CLIPVisionModel -> vision config dict."""
    if isinstance(source, dict):
        return dict(source)
    path = Path(source)
    path = path / "config.json" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"CLIP vision config not found: {source}")
    data = json.loads(path.read_text())
    data = data.get("vision_config", data)
    return {k: v for k, v in data.items() if k not in ("architectures", "transformers_version", "torch_dtype")}


def convert_clip_t5_config(source: dict, vision_config=None, **overrides) -> tuple[CLIPT5Config, dict, dict]:
    """Their config.json dict -> (CLIPT5Config, CLIPVisionConfig dict, T5Config dict). The vision config
    is `vision_config` (dict / CLIP folder), else the built-in ViT-L/14-336 when their mm_vision_tower
    names it. `overrides` set CLIPT5Config fields (t2v_metrics uses conversation "t5_chat", "pad")."""
    tower = str(source.get("mm_vision_tower", ""))
    if vision_config is None:
        if not tower.endswith("clip-vit-large-patch14-336"):
            raise ValueError(f"CLIP-T5 vision tower {tower!r} is not the built-in ViT-L/14-336: pass vision_config")
        vision_config = CLIP_VIT_L14_336
    vision = _vision_config_from(vision_config)
    vision["model_type"] = "clip_vision_model"
    mm_hidden = source.get("mm_hidden_size", vision["hidden_size"])
    if mm_hidden != vision["hidden_size"]:
        raise ValueError(f"CLIP-T5 mm_hidden_size {mm_hidden} != vision width {vision['hidden_size']}")
    t5 = {k: v for k, v in source.items() if not k.startswith("mm_") and k not in _NOT_T5}
    t5.update(model_type="t5", architectures=["T5ForConditionalGeneration"])
    config = CLIPT5Config(projector_type=source.get("mm_projector_type", "linear"),
                          select_layer=int(source.get("mm_vision_select_layer", -2)),
                          select_feature=source.get("mm_vision_select_feature", "patch"),
                          source=str(source.get("_name_or_path", "")), **overrides)
    return config, vision, t5


def _weight_files(folder: Path) -> tuple[list[Path], set[str] | None]:
    """(weight files in order, all keys when an index lists them)."""
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            weight_map = json.loads((folder / index).read_text())["weight_map"]
            return [folder / f for f in dict.fromkeys(weight_map.values())], set(weight_map)
    for single in ("model.safetensors", "pytorch_model.bin"):
        if (folder / single).is_file():
            return [folder / single], None
    raise FileNotFoundError(f"no CLIP-T5 weights (model*.safetensors / pytorch_model*.bin) in {folder}")


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"CLIP-T5 weight shard not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(obj, dict):
        raise TypeError(f"{path} does not hold a state dict")
    return obj


def _save(tensors: dict[str, torch.Tensor], path: Path, dtype) -> int:
    """safetensors file of contiguous, storage-unshared tensors (cast to `dtype` if given); returns bytes."""
    from mirokit.atomic import save_safetensors_atomic

    seen, out = set(), {}
    for k, t in tensors.items():
        t = t.detach().to(dtype) if dtype is not None and t.is_floating_point() else t.detach()
        ptr = t.untyped_storage().data_ptr()
        out[k] = t.clone() if ptr in seen else t.contiguous()
        seen.add(ptr)
    save_safetensors_atomic(path, out, {"format": "pt"})
    return sum(t.numel() * t.element_size() for t in out.values())


def convert_clip_t5_checkpoint(src_dir, out_dir, tokenizer=None, vision_tower=None, vision_config=None,
                               dtype: torch.dtype | None = None, **overrides) -> Path:
    """Their folder -> ours (config.json, vision_tower/, language_model/, mm_projector.safetensors and,
    when `tokenizer` (google/flan-t5-xxl folder / hub id / tokenizer object) is given, tokenizer/).
    `vision_tower`: local CLIP folder for the tower weights when the checkpoint has none (its config
    then also serves as vision_config); `dtype`: cast floating weights (default: keep)."""
    src, out = Path(src_dir), Path(out_dir)
    if not (src / "config.json").is_file():
        raise FileNotFoundError(f"CLIP-T5 checkpoint folder lacks config.json: {src}")
    source = json.loads((src / "config.json").read_text())
    if vision_config is None and vision_tower is not None:
        vision_config = vision_tower
    config, vision_cfg, t5_cfg = convert_clip_t5_config(source, vision_config, **overrides)
    files, all_keys = _weight_files(src)
    (out / "language_model").mkdir(parents=True, exist_ok=True)
    (out / "vision_tower").mkdir(parents=True, exist_ok=True)
    parts: dict[str, dict[str, torch.Tensor]] = {"vision_tower": {}, "mm_projector": {}}
    weight_map, total = {}, 0
    for i, file in enumerate(files):
        state = _load_weights(file)
        has_shared = "shared.weight" in (all_keys if all_keys is not None else state)
        lm: dict[str, torch.Tensor] = {}
        for key, tensor in state.items():
            if key == "encoder.embed_tokens.weight" and not has_shared:
                key = "shared.weight"
            mapped = map_clip_t5_key(key)
            if mapped is None:
                continue
            part, new = mapped
            (lm if part == "language_model" else parts[part])[new] = tensor
        if lm:
            name = f"model-{i + 1:05d}-of-{len(files):05d}.safetensors"
            total += _save(lm, out / "language_model" / name, dtype)
            weight_map.update(dict.fromkeys(lm, name))
        del state, lm
    if not weight_map:
        raise ValueError(f"no FlanT5 weights found in {src}")
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    write_json_atomic(out / "language_model" / "model.safetensors.index.json", index)
    write_json_atomic(out / "language_model" / "config.json", t5_cfg)
    if not parts["mm_projector"]:
        raise ValueError(f"no mm_projector weights found in {src}")
    if not parts["vision_tower"]:
        if vision_tower is None:
            raise ValueError(f"{src} holds no vision tower weights: pass vision_tower=<clip-vit-large-patch14-336>")
        clip_files, _ = _weight_files(Path(vision_tower))
        for file in clip_files:
            parts["vision_tower"].update({k: v for k, v in _load_weights(file).items()
                                          if k.startswith("vision_model.") and not k.endswith("position_ids")})
    _save(parts["vision_tower"], out / "vision_tower" / "model.safetensors", dtype)
    write_json_atomic(out / "vision_tower" / "config.json", vision_cfg)
    _save(parts["mm_projector"], out / "mm_projector.safetensors", dtype)
    config.to_json_file(out / "config.json")
    if tokenizer is not None:
        if isinstance(tokenizer, (str, Path)):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer))
        tokenizer.save_pretrained(out / "tokenizer")
    return out
