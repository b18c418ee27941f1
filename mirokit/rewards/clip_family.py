"""CLIP-family reward scorers, all on transformers' CLIPModel (no open_clip / timm / torchvision at run time).

| key                  | default model                         | raw score (per image, float32)              |
|----------------------|---------------------------------------|---------------------------------------------|
| `clip_score`         | jinaai/jina-clip-v2 (remote code)     | cos(image_embeds, text_embeds) in [-1, 1]   |
| `aesthetic_score`    | openai/clip-vit-large-patch14 + head  | LAION MLP(L2-normalised image embeds)       |
| `pick_a_score_score` | yuvalkirstain/PickScore_v1            | logit_scale.exp() * cos                     |
| `hpsv2_score`        | xswu/HPSv2 (HPS_v2.1_compressed.pt)   | cos (HPSv2's "hps score")                   |
| `sciscore_score`     | Jialuo21/SciScore                     | logit_scale.exp() * cos                     |

Every `model=` accepts a hub id or a local folder (offline). Images go through the folder's
CLIPImageProcessor with the PIL backend (resize shortest side bicubic, center crop, OpenAI mean/std);
captions through its tokenizer padded/truncated to 77 tokens. See docs/REWARDS.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mirokit.rewards.base import ModelScorer, check_inputs
from mirokit.rewards.clip_convert import (
    AESTHETIC_HEAD_FILES,
    clip_model_from_open_clip,
    load_aesthetic_head,
    load_state_dict_file,
)
from mirokit.rewards.registry import register_scorer
from mirokit.sources import locate

CLIP_CONTEXT = 77
LAION_H14 = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
_ARCHITECTURES = {"clip": "clip", "jina_clip": "jina"}  # config.json model_type -> clip_score path
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer_config.json")


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"


def _transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


def _dtype_kwargs(dtype) -> dict:
    return {"dtype": dtype} if _transformers_major() >= 5 else {"torch_dtype": dtype}


def load_image_processor(source: str, **hub):
    """The PIL-backend image processor saved at `source` (same numbers with or without torchvision installed)."""
    from transformers import AutoImageProcessor

    backend = {"backend": "pil"} if _transformers_major() >= 5 else {"use_fast": False}
    return AutoImageProcessor.from_pretrained(source, **backend, **hub)


def preprocess_images(image_processor, images: list):
    """N PIL images -> (N, 3, H, W) float32 pixel values. Non-RGB images are converted with PIL's
    convert("RGB") first (alpha dropped, as OpenAI CLIP / open_clip do) rather than composited on white."""
    rgb = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
    return image_processor(images=rgb, return_tensors="pt")["pixel_values"]


def _pooled(out):
    """get_*_features output -> (B, E): a tensor in transformers 4, `.pooler_output` in transformers 5."""
    return out if hasattr(out, "dim") else out.pooler_output


def _normalise(x):
    """(N, E) -> float32 rows of unit L2 norm (a zero row stays zero, as LAION's `normalized`)."""
    import torch.nn.functional as F

    return F.normalize(x.float(), dim=-1)


class ClipEmbeddingScorer(ModelScorer):
    """Shared base: a transformers CLIPModel + tokenizer + PIL image processor; L2-normalised embeddings.

    processor: folder or hub id of the tokenizer / image processor. Default: the model folder when it holds
    them, else `processor_default` (the published processor), else the model id itself.
    """

    processor_default: str | None = None
    logit_scaled = False  # True: score = logit_scale.exp() * cos (PickScore, SciScore)
    needs_text = True

    def __init__(self, model: str | None = None, *, processor: str | None = None, **common):
        super().__init__(model, **common)
        if processor:
            self.processor_path, self.processor_local = locate(processor, f"{self.key} processor")
        else:
            self.processor_path, self.processor_local = self._default_processor()

    def _default_processor(self) -> tuple[str, bool]:
        p = Path(self.model_path)
        if self.is_local and p.is_dir() and (p / "preprocessor_config.json").is_file() and (
                not self.needs_text or any((p / f).is_file() for f in _TOKENIZER_FILES)):
            return str(p), True
        if self.processor_default:
            return self.processor_default, False
        return self.model_path, self.is_local

    def _hub(self, local: bool) -> dict:
        return {"local_files_only": True} if local else {}

    def _load_model(self):
        from transformers import CLIPModel

        try:
            return CLIPModel.from_pretrained(self.model_path, **_dtype_kwargs(self.dtype), **self._hub(self.is_local))
        except (OSError, ValueError) as e:
            raise OSError(f"{self.key}: cannot load CLIPModel from {self.model_path} ({_first_line(e)})") from None

    def _load_processing(self) -> None:
        from transformers import AutoTokenizer

        src, hub = self.processor_path, self._hub(self.processor_local)
        try:
            self.image_processor = load_image_processor(src, **hub)
            self.tokenizer = AutoTokenizer.from_pretrained(src, **hub) if self.needs_text else None
        except (OSError, ValueError) as e:
            raise OSError(f"{self.key}: cannot load the tokenizer / image processor from {src} "
                          f"({_first_line(e)})") from None

    def _load(self) -> None:
        self.model = self._load_model().to(device=self.device, dtype=self.dtype).eval()
        self._load_processing()
        self.max_length = min(CLIP_CONTEXT, int(self.model.config.text_config.max_position_embeddings))

    def pixel_values(self, images: list):
        """N PIL images -> (N, 3, H, W) on the scorer's device and dtype."""
        return preprocess_images(self.image_processor, images).to(device=self.device, dtype=self.dtype)

    def text_inputs(self, captions: list[str]) -> dict:
        """N captions -> input_ids / attention_mask (N, max_length), padded and truncated to 77 tokens."""
        enc = self.tokenizer(captions, padding="max_length", truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return {k: enc[k].to(self.device) for k in ("input_ids", "attention_mask") if k in enc}

    def image_embeds(self, images: list):
        """N PIL images -> (N, E) float32 L2-normalised projected image embeddings."""
        return _normalise(_pooled(self.model.get_image_features(pixel_values=self.pixel_values(images))))

    def text_embeds(self, captions: list[str]):
        """N captions -> (N, E) float32 L2-normalised projected text embeddings."""
        return _normalise(_pooled(self.model.get_text_features(**self.text_inputs(captions))))

    def _score_batch(self, images: list, captions: list[str]) -> np.ndarray:
        cos = (self.image_embeds(images) * self.text_embeds(captions)).sum(-1)
        if self.logit_scaled:
            cos = self.model.logit_scale.detach().float().exp() * cos
        return cos.cpu().numpy()

    def score(self, images: list, captions: list[str]) -> np.ndarray:
        """images: N PIL images; captions: N strings -> (N,) float32 raw scores."""
        check_inputs(self.key, images, captions)
        return super().score(images, captions)

    def describe(self) -> dict:
        """What ran (`ModelScorer.describe`), plus the image processor's source."""
        return {**super().describe(), "processor": self.processor_path}


@register_scorer("clip_score", "image-text cosine similarity (jina-clip-v2 by default, or any HF CLIP model)")
class ClipScore(ClipEmbeddingScorer):
    """cos(image_embeds, text_embeds), the raw cosine in [-1, 1] (not the x100 / clipped CLIPScore).

    architecture: "clip" (transformers CLIPModel) or "jina" (jina-clip-v2's own published code, loaded only
    with trust_remote_code=True); default: read from config.json's model_type ("clip" / "jina_clip").
    truncate_dim: jina-clip-v2 Matryoshka dimension (None = full 1024).
    """

    key = "clip_score"
    default_model = "jinaai/jina-clip-v2"

    def __init__(self, model: str | None = None, *, architecture: str | None = None,
                 truncate_dim: int | None = None, **options):
        super().__init__(model, **options)
        if architecture not in (None, "clip", "jina"):
            raise ValueError(f"clip_score: unknown architecture {architecture!r}; known: clip, jina")
        if architecture is None and not self.is_local and self.model_path.startswith("jinaai/jina-clip"):
            architecture = "jina"
        if architecture == "jina" and not self.trust_remote_code:
            raise ValueError(f"clip_score: {self.model_path} is a custom architecture (jina_clip) that runs its own "
                             "published code; pass trust_remote_code=True, or model=<a CLIP model id or folder>")
        self.architecture = architecture
        self.truncate_dim = truncate_dim

    def _model_type(self) -> str:
        import json

        try:
            if self.is_local:
                cfg = Path(self.model_path) / "config.json"
            else:
                from huggingface_hub import hf_hub_download

                cfg = Path(hf_hub_download(self.model_path, "config.json"))
            model_type = json.loads(cfg.read_text()).get("model_type", "")
        except Exception as e:  # re-raised as one line
            raise OSError(f"clip_score: cannot read config.json of {self.model_path} ({_first_line(e)})") from None
        if model_type not in _ARCHITECTURES:
            raise ValueError(f"clip_score: unsupported model_type {model_type!r} in {self.model_path}; "
                             "supported: clip, jina_clip (with trust_remote_code=True)")
        return _ARCHITECTURES[model_type]

    def _load(self) -> None:
        arch = self.architecture or self._model_type()
        if arch == "jina" and not self.trust_remote_code:
            raise ValueError(f"clip_score: {self.model_path} is a jina_clip model; pass trust_remote_code=True")
        self.architecture = arch
        if arch == "clip":
            return super()._load()
        from transformers import AutoModel

        try:
            self.model = AutoModel.from_pretrained(self.model_path, **_dtype_kwargs(self.dtype), **self.hub_kwargs())
        except (OSError, ValueError, ImportError) as e:
            raise OSError(f"clip_score: cannot load {self.model_path} with its remote code "
                          f"({_first_line(e)})") from None
        self.model = self.model.to(self.device).eval()

    def _score_batch(self, images: list, captions: list[str]) -> np.ndarray:
        if self.architecture == "clip":
            return super()._score_batch(images, captions)
        extra = {"truncate_dim": self.truncate_dim} if self.truncate_dim else {}
        text = self.model.encode_text(captions, batch_size=len(captions), convert_to_tensor=True, **extra)
        image = self.model.encode_image(images, batch_size=len(images), convert_to_tensor=True, **extra)
        return (_normalise(image) * _normalise(text)).sum(-1).cpu().numpy()

    def describe(self) -> dict:
        """What ran (`ModelScorer.describe`), plus the architecture ("clip" or "jina")."""
        return {**super().describe(), "architecture": self.architecture}


@register_scorer("aesthetic_score", "LAION improved aesthetic predictor (MLP on CLIP ViT-L/14 image embeddings)")
class AestheticScore(ClipEmbeddingScorer):
    """LAION improved-aesthetic-predictor: MLP(L2-normalised CLIP ViT-L/14 image embeds), roughly a 1-10 rating.

    head: the head weights, `sac+logos+ava1-l14-linearMSE.pth` (loaded with weights_only=True) or its
    safetensors conversion (`convert_aesthetic_head`); default: one of those file names inside the model folder.
    Captions are ignored.
    """

    key = "aesthetic_score"
    default_model = "openai/clip-vit-large-patch14"
    needs_text = False

    def __init__(self, model: str | None = None, *, head: str | None = None, **options):
        super().__init__(model, **options)
        if head is None:
            folder = Path(self.model_path)
            found = [folder / f for f in AESTHETIC_HEAD_FILES if self.is_local and (folder / f).is_file()]
            if not found:
                raise ValueError("aesthetic_score: pass head=<path to sac+logos+ava1-l14-linearMSE.pth or its "
                                 ".safetensors> (published in christophschuhmann/improved-aesthetic-predictor)")
            head = str(found[0])
        self.head_path, _ = locate(head, "aesthetic_score head")

    def _load(self) -> None:
        super()._load()
        self.head = load_aesthetic_head(self.head_path).to(self.device)

    def _score_batch(self, images: list, captions: list[str]) -> np.ndarray:
        return self.head(self.image_embeds(images)).squeeze(-1).cpu().numpy()

    def describe(self) -> dict:
        """What ran (`ModelScorer.describe`), plus the aesthetic head's path."""
        return {**super().describe(), "head": self.head_path}


@register_scorer("pick_a_score_score", "PickScore_v1 (CLIP-H/14 fine-tuned on Pick-a-Pic)")
class PickScore(ClipEmbeddingScorer):
    """PickScore_v1 as published: logit_scale.exp() * cos(image, text); processor from LAION's CLIP-H/14."""

    key = "pick_a_score_score"
    default_model = "yuvalkirstain/PickScore_v1"
    processor_default = LAION_H14
    logit_scaled = True


@register_scorer("sciscore_score", "SciScore (CLIP-H/14 fine-tuned on Science-T2I)")
class SciScore(ClipEmbeddingScorer):
    """SciScore as published: logit_scale.exp() * cos(image, text); processor from the same repository."""

    key = "sciscore_score"
    default_model = "Jialuo21/SciScore"
    logit_scaled = True


@register_scorer("hpsv2_score", "HPSv2.1 (CLIP-H/14 fine-tuned on HPDv2), run as a transformers CLIPModel")
class HPSv2Score(ClipEmbeddingScorer):
    """HPSv2.1 "hps score": cos(image, text) of the fine-tuned open_clip ViT-H-14.

    model: a folder converted once with `convert_hpsv2` (config.json + model.safetensors); or the published
    checkpoint file (HPS_v2.1_compressed.pt, converted in memory); or a folder / hub repo holding it
    (`checkpoint_file`, default from xswu/HPSv2). Processor: LAION's CLIP-H/14 unless the folder holds one.
    """

    key = "hpsv2_score"
    default_model = "xswu/HPSv2"
    processor_default = LAION_H14

    def __init__(self, model: str | None = None, *, checkpoint_file: str = "HPS_v2.1_compressed.pt",
                 vision_head_width: int = 80, text_head_width: int = 64, **options):
        super().__init__(model, **options)
        self.checkpoint_file = checkpoint_file
        self.head_widths = {"vision_head_width": vision_head_width, "text_head_width": text_head_width}

    def _load_model(self):
        p = Path(self.model_path)
        if self.is_local and p.is_dir() and (p / "config.json").is_file():
            return super()._load_model()
        if self.is_local and p.is_dir():
            ckpt = p / self.checkpoint_file
            if not ckpt.is_file():
                raise FileNotFoundError(f"hpsv2_score: {p} holds neither config.json (a converted folder) "
                                        f"nor {self.checkpoint_file}")
        elif self.is_local:
            ckpt = p
        else:
            from huggingface_hub import hf_hub_download

            try:
                ckpt = Path(hf_hub_download(self.model_path, self.checkpoint_file))
            except Exception as e:  # re-raised as one line
                raise OSError(f"hpsv2_score: cannot fetch {self.checkpoint_file} from {self.model_path} "
                              f"({_first_line(e)})") from None
        return clip_model_from_open_clip(load_state_dict_file(ckpt, self.key), **self.head_widths)
