"""Checkpoint conversion for the CLIP-family scorers: open_clip -> transformers CLIPModel, LAION aesthetic head.

open_clip ViT checkpoints (HPSv2's `HPS_v2.1_compressed.pt` is one: an open_clip ViT-H-14 whose weights sit
under "state_dict") map one-to-one onto transformers' `CLIPModel`:

| open_clip                                        | transformers CLIPModel                                  |
|--------------------------------------------------|---------------------------------------------------------|
| visual.conv1.weight                              | vision_model.embeddings.patch_embedding.weight          |
| visual.class_embedding                           | vision_model.embeddings.class_embedding                 |
| visual.positional_embedding                      | vision_model.embeddings.position_embedding.weight       |
| visual.ln_pre / visual.ln_post                   | vision_model.pre_layrnorm / vision_model.post_layernorm |
| visual.proj (W, E), used as x @ proj             | visual_projection.weight = proj.T (E, W)                |
| [visual.]transformer.resblocks.N.attn.in_proj_*  | *.encoder.layers.N.self_attn.{q,k,v}_proj.* (thirds)    |
| ....attn.out_proj / ln_1 / ln_2                  | ....self_attn.out_proj / layer_norm1 / layer_norm2      |
| ....mlp.c_fc / mlp.c_proj                        | ....mlp.fc1 / mlp.fc2                                   |
| token_embedding / positional_embedding           | text_model.embeddings.token / position_embedding.weight |
| ln_final                                         | text_model.final_layer_norm                             |
| text_projection (W, E)                           | text_projection.weight = text_projection.T              |
| logit_scale                                      | logit_scale                                             |

The LAION improved-aesthetic-predictor head (`sac+logos+ava1-l14-linearMSE.pth`) is a plain state dict of
`layers.{0,2,4,6,7}.{weight,bias}` (Linear 768->1024->128->64->16->1 with dropouts at 1, 3, 5, no activations).
All loading is pickle-free: safetensors, or `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import re
from pathlib import Path

_BLOCK_RE = re.compile(r"^(visual\.)?transformer\.resblocks\.(\d+)\.(.+)$")
_BLOCK = {
    "ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
    "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
}
_TOP = {
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
    "logit_scale": "logit_scale",
}
_TRANSPOSED = {"visual.proj": "visual_projection.weight", "text_projection": "text_projection.weight"}
_IGNORED = ("attn_mask", "visual.attn_mask")  # causal-mask buffers some open_clip versions save
AESTHETIC_HEAD_FILES = ("aesthetic_head.safetensors", "sac+logos+ava1-l14-linearMSE.pth")
_AESTHETIC_LINEARS = (0, 2, 4, 6, 7)


def load_state_dict_file(path: str | Path, what: str) -> dict:
    """A tensor state dict from .safetensors, or .pt/.pth/.bin via torch.load(weights_only=True).

    A checkpoint dict holding the weights under "state_dict" is unwrapped and a DDP "module." prefix
    is removed. Missing or unreadable files raise a one-line error naming `what` and the path.
    """
    import torch

    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{what} weights not found: {p}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p))
        else:
            sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # re-raised as one line
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"{what}: cannot read {p} as a tensor state dict ({type(e).__name__}: {first})") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not sd:
        raise ValueError(f"{what}: {p} holds no state dict")
    out = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{what}: {p} entry {k!r} is a {type(v).__name__}, not a tensor")
        out[k.removeprefix("module.")] = v
    return out


def _count_blocks(state_dict: dict, prefix: str) -> int:
    pat = re.compile(rf"^{re.escape(prefix)}transformer\.resblocks\.(\d+)\.")
    ids = {int(m.group(1)) for k in state_dict if (m := pat.match(k))}
    if not ids or ids != set(range(len(ids))):
        raise ValueError(f"open_clip state dict: {prefix or 'text '}transformer blocks missing or not numbered 0..N-1")
    return len(ids)


def open_clip_config(state_dict: dict, *, vision_head_width: int = 64, text_head_width: int = 64,
                     quick_gelu: bool = False):
    """transformers CLIPConfig for an open_clip ViT state dict; sizes are read from the tensor shapes.

    Head counts are not in the shapes: heads = width // head_width (open_clip's ViT-H-14: vision 1280/80,
    text 1024/64, so 16 and 16). `quick_gelu` is True for OpenAI-trained weights, False (nn.GELU) for LAION
    ones such as ViT-H-14 and everything fine-tuned from it (HPSv2).
    """
    from transformers import CLIPConfig

    need = ("visual.conv1.weight", "visual.positional_embedding", "visual.proj", "token_embedding.weight",
            "positional_embedding", "text_projection")
    for k in need:
        if k not in state_dict:
            raise ValueError(f"open_clip state dict: missing {k!r} (not an open_clip ViT CLIP checkpoint?)")
    conv = state_dict["visual.conv1.weight"]  # (Wv, 3, P, P)
    width_v, patch = int(conv.shape[0]), int(conv.shape[-1])
    grid = round((state_dict["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    vocab, width_t = (int(s) for s in state_dict["token_embedding.weight"].shape)
    embed = int(state_dict["visual.proj"].shape[1])
    for name, width, head_width in (("vision", width_v, vision_head_width), ("text", width_t, text_head_width)):
        if width % head_width:
            raise ValueError(f"open_clip state dict: {name} width {width} is not a multiple of head width {head_width}")
    act = "quick_gelu" if quick_gelu else "gelu"
    vision = dict(
        hidden_size=width_v, patch_size=patch, image_size=grid * patch, num_channels=int(conv.shape[1]),
        num_hidden_layers=_count_blocks(state_dict, "visual."), num_attention_heads=width_v // vision_head_width,
        intermediate_size=int(state_dict["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
        hidden_act=act, layer_norm_eps=1e-5, projection_dim=embed,
    )
    text = dict(
        vocab_size=vocab, hidden_size=width_t, max_position_embeddings=int(state_dict["positional_embedding"].shape[0]),
        num_hidden_layers=_count_blocks(state_dict, ""), num_attention_heads=width_t // text_head_width,
        intermediate_size=int(state_dict["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]),
        hidden_act=act, layer_norm_eps=1e-5, projection_dim=embed,
        # open_clip pools at argmax(token id) = EOT, the last id of the CLIP BPE vocabulary
        bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1,
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=embed)


def _expected_keys(config) -> set[str]:
    keys = set(_TOP.values()) | set(_TRANSPOSED.values())
    layer = [f"{n}.{p}" for n in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", *_BLOCK.values())
             for p in ("weight", "bias")]
    for tower, sub in (("vision_model", config.vision_config), ("text_model", config.text_config)):
        keys |= {f"{tower}.encoder.layers.{i}.{s}" for i in range(sub.num_hidden_layers) for s in layer}
    return keys


def convert_open_clip_to_transformers(state_dict: dict, config) -> dict:
    """open_clip ViT CLIP state dict -> transformers CLIPModel state dict (see the module table).

    state_dict: {open_clip key: tensor}; config: the CLIPConfig the result is for (e.g. `open_clip_config`).
    in_proj_weight (3W, W) / in_proj_bias (3W,) are split into q, k, v thirds; the two projections are
    transposed. Unknown keys and keys the config needs but the checkpoint lacks raise a one-line error.
    """
    out = {}
    for key, value in state_dict.items():
        if key in _IGNORED:
            continue
        if key in _TOP:
            out[_TOP[key]] = value
        elif key in _TRANSPOSED:
            out[_TRANSPOSED[key]] = value.t().contiguous()
        elif m := _BLOCK_RE.match(key):
            tower = "vision_model" if m.group(1) else "text_model"
            base = f"{tower}.encoder.layers.{m.group(2)}."
            rest = m.group(3)
            if rest in ("attn.in_proj_weight", "attn.in_proj_bias"):
                kind = rest.rsplit("_", 1)[1]
                if value.shape[0] % 3:
                    raise ValueError(f"open_clip state dict: {key} has {value.shape[0]} rows, not 3 x width")
                for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                    out[f"{base}self_attn.{name}.{kind}"] = part.contiguous()
            else:
                module, _, param = rest.rpartition(".")
                if module not in _BLOCK:
                    raise ValueError(f"open_clip state dict: unsupported key {key!r}")
                out[f"{base}{_BLOCK[module]}.{param}"] = value
        else:
            raise ValueError(f"open_clip state dict: unsupported key {key!r}")
    expected = _expected_keys(config)
    missing = sorted(expected - set(out))
    if missing:
        raise ValueError(f"open_clip state dict: missing weights for {missing[0]} ({len(missing)} missing)")
    extra = sorted(set(out) - expected)
    if extra:
        raise ValueError(f"open_clip state dict: weights for {extra[0]} do not fit the config ({len(extra)} extra)")
    return out


def clip_model_from_open_clip(state_dict: dict, *, vision_head_width: int = 80, text_head_width: int = 64,
                              quick_gelu: bool = False):
    """An eval-mode transformers CLIPModel (float32) holding an open_clip ViT state dict (defaults: ViT-H-14)."""
    from transformers import CLIPModel

    config = open_clip_config(state_dict, vision_head_width=vision_head_width, text_head_width=text_head_width,
                              quick_gelu=quick_gelu)
    converted = convert_open_clip_to_transformers(state_dict, config)
    model = CLIPModel(config)
    model.load_state_dict(converted, strict=True)
    return model.float().eval()


def convert_hpsv2(pt_path: str | Path, out_dir: str | Path, *, processor: str | None = None,
                  vision_head_width: int = 80, text_head_width: int = 64) -> Path:
    """One-time conversion of HPSv2's open_clip checkpoint (HPS_v2.1_compressed.pt) to a transformers folder.

    Writes out_dir/config.json and out_dir/model.safetensors (tensors keep their dtype). `processor`: a
    folder or hub id holding the ViT-H-14 tokenizer and image processor (the published one is
    laion/CLIP-ViT-H-14-laion2B-s32B-b79K); when given they are saved into out_dir too, so the folder
    scores offline on its own. Returns out_dir.
    """
    from mirokit.atomic import save_safetensors_atomic

    sd = load_state_dict_file(pt_path, "hpsv2_score")
    config = open_clip_config(sd, vision_head_width=vision_head_width, text_head_width=text_head_width)
    converted = convert_open_clip_to_transformers(sd, config)
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    config.architectures = ["CLIPModel"]
    config.save_pretrained(str(out))
    save_safetensors_atomic(out / "model.safetensors", {k: v.contiguous() for k, v in converted.items()},
                            {"format": "pt"})
    if processor is not None:
        from transformers import AutoImageProcessor, AutoTokenizer

        AutoTokenizer.from_pretrained(processor).save_pretrained(str(out))
        AutoImageProcessor.from_pretrained(processor).save_pretrained(str(out))
    return out


def aesthetic_mlp(in_dim: int = 768, hidden: tuple[int, ...] = (1024, 128, 64, 16)):
    """The LAION improved-aesthetic-predictor MLP: (N, in_dim) -> (N, 1). Linear layers at indices 0, 2, 4, 6, 7."""
    from torch import nn

    d1, d2, d3, d4 = hidden
    return nn.Sequential(nn.Linear(in_dim, d1), nn.Dropout(0.2), nn.Linear(d1, d2), nn.Dropout(0.2),
                         nn.Linear(d2, d3), nn.Dropout(0.1), nn.Linear(d3, d4), nn.Linear(d4, 1))


def aesthetic_head_state_dict(state_dict: dict, what: str = "aesthetic_score") -> dict:
    """Key-map a published head state dict ("layers.N.weight", or already "N.weight") to `aesthetic_mlp` keys."""
    out = {(k.removeprefix("layers.")): v for k, v in state_dict.items()}
    expected = {f"{i}.{p}" for i in _AESTHETIC_LINEARS for p in ("weight", "bias")}
    unknown = sorted(set(out) - expected)
    if unknown:
        raise ValueError(f"{what}: unexpected aesthetic head key {unknown[0]!r} (expected layers.{{0,2,4,6,7}}.*)")
    missing = sorted(expected - set(out))
    if missing:
        raise ValueError(f"{what}: aesthetic head lacks layers.{missing[0]}")
    return out


def load_aesthetic_head(path: str | Path, what: str = "aesthetic_score"):
    """The aesthetic MLP (float32, eval) from a .pth (weights_only) or .safetensors head file; sizes from its shapes."""
    sd = aesthetic_head_state_dict(load_state_dict_file(path, what), what)
    in_dim = int(sd["0.weight"].shape[1])
    hidden = tuple(int(sd[f"{i}.weight"].shape[0]) for i in _AESTHETIC_LINEARS[:-1])
    head = aesthetic_mlp(in_dim, hidden)
    try:
        head.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{what}: aesthetic head {path} has inconsistent shapes "
                         f"({str(e).splitlines()[-1].strip()})") from None
    return head.float().eval()


def convert_aesthetic_head(pth: str | Path, out_safetensors: str | Path) -> Path:
    """Rewrite the published .pth head as safetensors (keys "layers.N.weight/bias", float32). Returns the path."""
    from mirokit.atomic import save_safetensors_atomic

    sd = aesthetic_head_state_dict(load_state_dict_file(pth, "aesthetic_score"))
    out = Path(out_safetensors).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors_atomic(out, {f"layers.{k}": v.float().contiguous() for k, v in sd.items()}, {"format": "pt"})
    return out
