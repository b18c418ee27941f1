"""CLIP-FlanT5 (zhiqiulin/clip-flant5-xxl, the VQAScore model of t2v_metrics) on transformers parts.

LLaVA-style: image (B, 3, 336, 336) -> CLIP ViT-L/14-336 (`CLIPVisionModel`) -> hidden states of the
second-to-last layer without the CLS token (B, 576, 1024) -> projector "mlp2x_gelu" (Linear 1024 ->
d_model, GELU, Linear d_model -> d_model) -> image tokens (B, 576, d_model) spliced into the FlanT5
encoder input in place of the `<image>` placeholder (id -200) -> `T5ForConditionalGeneration`; the
decoder scores the answer tokens. VQAScore = exp(-mean token cross-entropy of the answer "Yes"
(tokens "▁Yes", "</s>")), the softmax restricted to the tokenizer's vocabulary (t2v_metrics resizes
the embeddings to len(tokenizer) = 32100 before scoring).

Folder layout (ours): config.json (`CLIPT5Config`), vision_tower/ (CLIPVisionModel), language_model/
(T5ForConditionalGeneration, sharded safetensors allowed), mm_projector.safetensors, tokenizer/.
Their published checkpoint converts to it with vqa_convert.py.
"""

import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

IMAGE_TOKEN_INDEX = -200
IGNORE_INDEX = -100
CONFIG_TYPE = "mirokit_clip_t5"
SYSTEM_MSG = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives "
              "helpful, detailed, and polite answers to the user's questions.")
QUESTION_TEMPLATE = 'Does this figure show "{}"? Please answer yes or no.'
ANSWER_TEMPLATE = "Yes"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CONVERSATIONS = ("t5_plain", "t5_chat", "t5_chat_no_system", "t5_chat_no_system_no_user")


@dataclass
class CLIPT5Config:
    """Everything around the two transformers models (saved as config.json, model_type mirokit_clip_t5)."""

    projector_type: str = "mlp2x_gelu"
    select_layer: int = -2
    select_feature: str = "patch"
    image_aspect_ratio: str = "pad"
    image_mean: tuple = CLIP_MEAN
    image_std: tuple = CLIP_STD
    conversation: str = "t5_chat"
    system_message: str = SYSTEM_MSG
    question_template: str = QUESTION_TEMPLATE
    answer_template: str = ANSWER_TEMPLATE
    context_len: int = 2048
    source: str = ""

    def __post_init__(self):
        if self.conversation not in CONVERSATIONS:
            raise ValueError(f"unknown CLIP-T5 conversation {self.conversation!r}; known: {', '.join(CONVERSATIONS)}")
        if self.select_feature not in ("patch", "cls_patch"):
            raise ValueError(f"unknown CLIP-T5 select_feature {self.select_feature!r}")
        if self.image_aspect_ratio not in ("pad", "square"):
            raise ValueError(f"unknown CLIP-T5 image_aspect_ratio {self.image_aspect_ratio!r}")
        self.image_mean, self.image_std = tuple(self.image_mean), tuple(self.image_std)

    def format_question(self, caption: str) -> str:
        """Caption -> the encoder prompt with its `<image>` placeholder (their `format_question`)."""
        q = self.question_template.format(caption)
        return {"t5_plain": "<image>" + q,
                "t5_chat": self.system_message + " USER: <image>\n" + q + " ASSISTANT: ",
                "t5_chat_no_system": "USER: <image>\n" + q + " ASSISTANT: ",
                "t5_chat_no_system_no_user": "<image>\n" + q + " : "}[self.conversation]

    def to_json_file(self, path) -> None:
        """Write the config as config.json-style JSON (atomically)."""
        from mirokit.atomic import write_json_atomic

        write_json_atomic(path, {"model_type": CONFIG_TYPE, **asdict(self)})

    @classmethod
    def from_json_file(cls, path) -> "CLIPT5Config":
        """Read a config written by `to_json_file`; another model_type or an unknown field is a one-line ValueError."""
        data = json.loads(Path(path).read_text())
        if data.pop("model_type", None) != CONFIG_TYPE:
            raise ValueError(f"{path} is not a mirokit CLIP-T5 config (model_type != {CONFIG_TYPE!r}); "
                             "convert their checkpoint with mirokit.rewards.vqa_convert first")
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise ValueError(f"{path}: unknown CLIP-T5 config field {key!r}")
        return cls(**data)


def build_projector(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    """LLaVA projectors: "linear", "mlp{N}x_gelu" (Linear, then N-1 x [GELU, Linear]), "identity"."""
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    m = re.fullmatch(r"mlp(\d+)x_gelu", kind)
    if m:
        mods: list[nn.Module] = [nn.Linear(in_dim, out_dim)]
        for _ in range(1, int(m.group(1))):
            mods += [nn.GELU(), nn.Linear(out_dim, out_dim)]
        return nn.Sequential(*mods)
    if kind == "identity" and in_dim == out_dim:
        return nn.Identity()
    raise ValueError(f"unknown CLIP-T5 projector {kind!r} ({in_dim} -> {out_dim})")


def shift_right(labels: torch.Tensor, start_id: int, pad_id: int) -> torch.Tensor:
    """(B, T) labels -> decoder inputs (B, T): start token, labels[:, :-1], IGNORE_INDEX -> pad (T5's)."""
    out = labels.new_full(labels.shape, pad_id)
    out[:, 0] = start_id
    out[:, 1:] = labels[:, :-1]
    return out.masked_fill(out == IGNORE_INDEX, pad_id)


class CLIPT5ForVQAScore(nn.Module):
    """CLIPVisionModel + projector + T5ForConditionalGeneration (see module docstring)."""

    def __init__(self, config: CLIPT5Config, vision_tower: nn.Module, language_model: nn.Module,
                 mm_projector: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.vision_tower = vision_tower
        self.language_model = language_model
        self.mm_projector = mm_projector or build_projector(
            config.projector_type, vision_tower.config.hidden_size, language_model.config.d_model)

    @classmethod
    def from_configs(cls, config: CLIPT5Config, vision_config, t5_config) -> "CLIPT5ForVQAScore":
        """Randomly initialised model from a CLIPVisionConfig and a T5Config (tests, new training)."""
        from transformers import CLIPVisionModel, T5ForConditionalGeneration

        return cls(config, CLIPVisionModel(vision_config), T5ForConditionalGeneration(t5_config))

    @property
    def image_size(self) -> int:
        """Side S in pixels of the (B, 3, S, S) images the vision tower takes."""
        return int(self.vision_tower.config.image_size)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> projected image tokens (B, P, d_model); P = (S / patch)^2 (+1 with cls_patch)."""
        vision_dtype = next(self.vision_tower.parameters()).dtype
        out = self.vision_tower(pixel_values=pixel_values.to(vision_dtype), output_hidden_states=True)
        feats = out.hidden_states[self.config.select_layer]
        if self.config.select_feature == "patch":
            feats = feats[:, 1:]
        params = list(self.mm_projector.parameters())
        return self.mm_projector(feats.to(params[0].dtype if params else feats.dtype))

    def merge_image_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                             image_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """input_ids / attention_mask (B, L) with one IMAGE_TOKEN_INDEX each, image_features (B, P, D) ->
        (inputs_embeds (B, L - 1 + P, D), attention_mask (B, L - 1 + P)): the placeholder is replaced by
        the P image tokens and P - 1 ones are prepended to the mask, as their
        `prepare_inputs_labels_for_multimodal` (right padding keeps it aligned).

        The placeholders are found on the host (input_ids may be given there: the scorer does), so a batch on a GPU
        costs at most one copy of the ids, not a device sync per row."""
        embed = self.language_model.get_input_embeddings()
        placeholder = input_ids.cpu() == IMAGE_TOKEN_INDEX
        counts = placeholder.sum(1).tolist()
        for b, count in enumerate(counts):
            if count != 1:
                raise ValueError(f"CLIP-T5 input {b} holds {count} image placeholders, expected 1")
        ids_on_device = input_ids.to(embed.weight.device)
        rows = [torch.cat([embed(ids[:p]), image_features[b].to(embed.weight.dtype), embed(ids[p + 1:])])
                for b, (ids, p) in enumerate(zip(ids_on_device, placeholder.int().argmax(1).tolist()))]
        ones = attention_mask.new_ones(len(input_ids), image_features.shape[1] - 1)
        return torch.stack(rows), torch.cat([ones, attention_mask], dim=1)

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, 3, S, S), input_ids / attention_mask (B, L), labels (B, T) (IGNORE_INDEX = pad)
        -> decoder logits (B, T, vocab)."""
        embeds, mask = self.merge_image_features(input_ids, attention_mask, self.encode_images(pixel_values))
        cfg = self.language_model.config
        out = self.language_model(inputs_embeds=embeds, attention_mask=mask.long(),
                                  decoder_input_ids=shift_right(labels, cfg.decoder_start_token_id, cfg.pad_token_id),
                                  decoder_attention_mask=labels.ne(IGNORE_INDEX).long())
        return out.logits

    def answer_probability(self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                           labels: torch.Tensor, vocab_size: int | None = None) -> torch.Tensor:
        """Same inputs as forward -> (B,) float32 exp(-mean cross-entropy of each row's labels), the
        softmax taken over the first `vocab_size` logits (all when None)."""
        logits = self(pixel_values, input_ids, attention_mask, labels).float()
        if vocab_size is not None:
            logits = logits[..., :vocab_size]
        keep = labels.ne(IGNORE_INDEX)
        logp = logits.log_softmax(-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return ((logp * keep).sum(1) / keep.sum(1)).exp()

    def save_pretrained(self, out_dir) -> Path:
        """Write our folder layout (see module docstring); returns the folder."""
        from mirokit.atomic import save_safetensors_atomic

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.config.to_json_file(out / "config.json")
        self.vision_tower.save_pretrained(out / "vision_tower")
        self.language_model.save_pretrained(out / "language_model")
        state = {k: v.detach().contiguous() for k, v in self.mm_projector.state_dict().items()}
        save_safetensors_atomic(out / "mm_projector.safetensors", state, {"format": "pt"})
        return out

    @classmethod
    def from_pretrained(cls, path, dtype: torch.dtype | None = None) -> "CLIPT5ForVQAScore":
        """Load our folder layout (eval mode, on CPU); a missing or unexpected weight is a one-line error."""
        from safetensors.torch import load_file
        from transformers import CLIPVisionModel, T5ForConditionalGeneration

        root = Path(path)
        for part in ("config.json", "vision_tower", "language_model", "mm_projector.safetensors"):
            if not (root / part).exists():
                raise FileNotFoundError(f"CLIP-T5 folder {root} lacks {part}")
        config = CLIPT5Config.from_json_file(root / "config.json")
        parts = {}
        for name, klass in (("vision_tower", CLIPVisionModel), ("language_model", T5ForConditionalGeneration)):
            kwargs = {"dtype": dtype} if dtype is not None else {}
            model, info = klass.from_pretrained(str(root / name), local_files_only=True, output_loading_info=True,
                                                **kwargs)
            bad = sorted(info["missing_keys"]) + sorted(str(k) for k in info["mismatched_keys"])
            if bad:
                raise ValueError(f"CLIP-T5 {name} weights incomplete: {bad[0]!r} ({len(bad)} keys)")
            parts[name] = model
        model = cls(config, parts["vision_tower"], parts["language_model"])
        model.mm_projector.load_state_dict(load_file(str(root / "mm_projector.safetensors")), strict=True)
        if dtype is not None:
            model.mm_projector.to(dtype)
        return model.eval()
