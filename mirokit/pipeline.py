"""A trained text-to-image model on disk: generator + text encoder + image space (+ an empty-prompt embedding).

Checkpoint directory layout (HF style, no pickle):
    config.json            generator config (GeneratorConfig as JSON)
    model.safetensors      generator weights (EMA when written by the trainer)
    text_encoder/          text encoder spec (config.json) and, if trained, its model.safetensors
    pipeline.json          image space, reward keys, sampler defaults, mirokit version, training config
    calibration.json       optional: how the training data's raw reward scores became targets in [0, 1]
    uncond_text.safetensors  optional: the embedding used for the empty prompt (precomputed text)
    README.md              the model card (mirokit.model_card; a README.md mirokit did not write is kept)
    train_state/           only in training checkpoints: everything needed to resume exactly

`MiroPipeline.from_pretrained` also reads the released MIRO checkpoints (a folder or hub repo with
config.json holding `network` / `preconditioning` sections, model.safetensors with `network.*` /
`preconditioning.*`, uncond_embedding.npy); see docs/OFFICIAL.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mirokit.data.calibration import Calibration
from mirokit.data.source import DatasetInfo
from mirokit.encoders.pixel import ImageSpace, PixelSpace, build_image_space
from mirokit.encoders.text import TextEncoder, build_text_encoder
from mirokit.models.generator import MiroGenerator
from mirokit.pipeline_call import MiroArrayOutput, MiroPipelineOutput
from mirokit.pretrained import CONFIG_NAME, WEIGHTS_NAME, load_weights, read_json, read_weights, write_json
from mirokit.sources import model_folder

PIPELINE_NAME = "pipeline.json"
TEXT_ENCODER_DIR = "text_encoder"
FORMAT_VERSION = 2
"""2: config.json's backbone is a {kind: ...} section (format 1 files are upgraded on load)"""
OFFICIAL_FILES = (CONFIG_NAME, WEIGHTS_NAME, "uncond_embedding.npy")
OFFICIAL_TEXT_ENCODER = "google/flan-t5-xl"
OFFICIAL_VAE = "stabilityai/sdxl-vae"


class MiroPipeline:
    """Holds the pieces needed to turn prompts + reward targets into images: `pipe("a red circle").images`.

    `uncond_text` (L, D), if set, is the embedding of the empty prompt (all L tokens valid) used by
    the unconditional guidance branch instead of encoding "" (the official models ship one);
    `calibration`, if set, says which raw reward scores each target in [0, 1] stands for.
    """

    def __init__(self, generator: MiroGenerator, text_encoder: TextEncoder, image_space: ImageSpace | None = None,
                 extra: dict | None = None, uncond_text: Tensor | None = None, calibration: Calibration | None = None):
        self.generator = generator
        self.text_encoder = text_encoder
        self.image_space = image_space or PixelSpace()
        self.extra = dict(extra or {})
        self.uncond_text = None if uncond_text is None else uncond_text.float().reshape(-1, uncond_text.shape[-1])
        self.calibration = calibration

    @property
    def device(self) -> torch.device:
        """Where the generator's weights are."""
        return next(self.generator.parameters()).device

    @property
    def reward_keys(self) -> list[str]:
        """The generator's reward keys, in order."""
        return self.generator.reward_keys

    @property
    def sampler_defaults(self) -> dict:
        """The partial sampling settings the model was saved with (pipeline.json "sampler_defaults": e.g. the
        released steps and guidance of the official models, the demo's sampler); below explicit settings and
        presets, above the official sampler (mirokit.sampling.resolve)."""
        return dict(self.extra.get("sampler_defaults", {}))

    def to(self, *args, **kwargs) -> MiroPipeline:
        """Move the pipeline, as `nn.Module.to` takes it: `to("cuda")`, `to(torch.bfloat16)`, `to("cpu",
        torch.float16)`, `to(device=..., dtype=...)`. The device moves the generator, the text encoder and the image
        space; the dtype casts the generator's weights (inputs are cast to it, samples come back in float32) and,
        on a GPU, the T5 and the VAE too (on a CPU they stay float32: their half-precision CPU kernels are slow and
        their outputs feed the generator in float32 anyway). Returns self."""
        from mirokit.pipeline_call import parse_to

        device, dtype = parse_to(*args, **kwargs)
        if device is not None:
            self.generator.to(device)
            self.text_encoder.to(device)
            self.image_space.to(device)
        if dtype is not None:
            self.generator.to_dtype(dtype)
            if self.device.type != "cpu":
                for part in (self.text_encoder, self.image_space):
                    if callable(getattr(part, "to_dtype", None)):
                        part.to_dtype(dtype)
        return self

    def __call__(self, prompt: str | list[str], *, reward_targets: dict[str, float | None] | None = None,
                 negative_reward_targets: dict[str, float | None] | None = None,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 num_images_per_prompt: int | None = None, generator: torch.Generator | None = None,
                 output_type: str = "pil", callback_on_step_end=None,
                 callback_on_step_end_tensor_inputs: list[str] | None = None,
                 num_images: int | None = None, preset: str | None = None, callback=None,
                 progress: bool = False, **sampling) -> MiroPipelineOutput | MiroArrayOutput:
        """Prompt(s) + reward targets -> the images, prompt-major (every image of the first prompt, then the next):
        a list of PIL images that also has `.images` (diffusers), `.settings` (the SamplingSettings used),
        `.prompts` and `.indices` (mirokit.pipeline_call.MiroPipelineOutput).

        The official package's call runs unchanged: `pipe(prompt, reward_targets=, negative_reward_targets=,
        num_inference_steps=, guidance_scale=, num_images_per_prompt=, generator=, output_type="pil"|"numpy")`;
        the table of names is in mirokit.pipeline_call and docs/PYTHON.md. mirokit's own names: every sampling
        setting of `mirokit.sampling.SamplingSettings` as a keyword (rewards, negative_rewards, solver, steps, shift,
        guidance, text_guidance, reward_guidance, guidance_interval, seed, batch_size: the table in docs/CONFIG.md);
        an unknown keyword is a one-line ValueError listing them.
        rewards: positive targets {key: value in [0, 1] or None = missing}; keys not named are asked at 1.0.
        negative_rewards: targets of the unconditional branch; keys not named get 0.0.
        preset: a built-in preset name ("official", "fast") or a preset JSON file; the other keyword arguments
            override it, and it overrides the model's defaults (`sampler_defaults`), as `mirokit sample` does.
        Noise: with `generator` (a torch.Generator, or one per image) the starting noise is one
        `torch.randn((B, C, H, W), generator=generator)`, as the official package draws it; without it, image j of
        prompt i starts from noise seeded by (seed, i, j): the same pixels as `mirokit sample` with the same
        settings. output_type: pil | numpy (uint8 (B, H, W, 3), official) | np | pt | latent (diffusers).
        callback(StepProgress) runs after every step; returning False cancels (mirokit.sampling.SamplingCancelled);
        callback_on_step_end is diffusers' form (mirokit.pipeline_call.step_end_callback).
        A reward key the model lacks is a one-line ValueError.
        """
        from mirokit.pipeline_call import (
            chain,
            check_output_type,
            format_output,
            generator_noise,
            merge_names,
            step_end_callback,
        )
        from mirokit.sampling import SamplingSettings, generate_pairs, prompt_major_pairs, resolve
        from mirokit.sampling.options import names
        from mirokit.sampling.presets import load_preset

        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError("prompt must be a string or a non-empty list of strings")
        check_output_type(output_type)
        unknown = sorted(set(sampling) - set(names(SamplingSettings, "call")))
        if unknown:
            raise ValueError(f"MiroPipeline() got an unknown keyword {unknown[0]!r}; sampling settings: "
                             f"{', '.join(names(SamplingSettings, 'call'))}")
        explicit = merge_names(
            {"reward_targets": reward_targets, "negative_reward_targets": negative_reward_targets,
             "num_inference_steps": num_inference_steps, "guidance_scale": guidance_scale,
             "num_images_per_prompt": num_images_per_prompt},
            {**sampling, "num_images": num_images})
        count = explicit.pop("num_images")
        count = 1 if count is None else count
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"num_images (num_images_per_prompt) must be an integer >= 1, got {count!r}")
        if generator is not None and sampling.get("seed") is not None:
            raise ValueError("give generator= or seed=, not both (they both choose the starting noise)")
        settings = resolve(explicit, load_preset(preset), self.sampler_defaults)
        pairs = prompt_major_pairs(len(prompts), count)
        mc = self.generator.config
        noise = None if generator is None else generator_noise(
            generator, (mc.image_channels, mc.image_size, mc.image_size), len(pairs))
        if callback_on_step_end is not None:
            self.interrupt = False
            callback = chain(callback, step_end_callback(self, callback_on_step_end,
                                                         callback_on_step_end_tensor_inputs))
        per_image = [prompts[i] for i, _ in pairs]
        samples = generate_pairs(self, per_image, pairs, settings, noise=noise, progress=progress, callback=callback)
        return format_output(self.image_space, samples, output_type, prompts=per_image, indices=pairs,
                             settings=settings, noise="seed" if generator is None else "generator")

    @torch.no_grad()
    def encode_text(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        """captions: B strings -> (B, L, D) embeddings, (B, L) bool mask, on the generator's device."""
        emb, mask = self.text_encoder(list(captions))
        return emb.to(self.device), mask.to(self.device)

    @torch.no_grad()
    def encode_uncond(self) -> tuple[Tensor, Tensor]:
        """The empty prompt: (1, L, D) embedding and (1, L) mask (the stored one if any, else encode "")."""
        if self.uncond_text is None:
            return self.encode_text([""])
        emb = self.uncond_text.to(self.device).unsqueeze(0)
        return emb, torch.ones(emb.shape[:2], dtype=torch.bool, device=self.device)

    def save_pretrained(self, directory: str | Path, *, generator_state: dict | None = None,
                        text_encoder_state: dict | None = None, card: dict | None = None) -> None:
        """Write the checkpoint layout above; explicit state dicts (e.g. EMA weights) are written instead of
        the live weights (which are not touched). README.md is the model card (mirokit.model_card.write_model_card,
        `card` its arguments: repo_id, license, base_model, eval_results; a README.md mirokit did not write stays)."""
        from mirokit import __version__
        from mirokit.model_card import write_model_card

        directory = Path(directory)
        self.generator.save_pretrained(directory, state_dict=generator_state)
        self.text_encoder.save_pretrained(directory / TEXT_ENCODER_DIR, state_dict=text_encoder_state)
        DatasetInfo(calibration=self.calibration, uncond_text=self.uncond_text).save(directory)
        meta = {"format_version": FORMAT_VERSION, "mirokit_version": __version__,
                "image_space": self.image_space.spec(), "reward_keys": self.reward_keys, **self.extra}
        write_json(directory / PIPELINE_NAME, meta)
        write_model_card(directory, **(card or {}))

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, variant: str | None = None,
                        device: torch.device | str | None = None, torch_dtype: torch.dtype | None = None,
                        text_encoder: str | None = None, vae: str | None = None, cache_dir: str | Path | None = None,
                        revision: str | None = None, token: str | bool | None = None) -> MiroPipeline:
        """Load a mirokit model folder or a released MIRO checkpoint (folder or hub repo id), with the official
        package's keywords.

        variant: a subfolder (e.g. "miro-no-clip" of nicolas-dufour/miro-ablations).
        device, torch_dtype: where and in which dtype to put it (`pipe.to(device, torch_dtype)`; default CPU, float32).
        text_encoder / vae: hub id or local folder replacing the stored T5 / VAE (for offline copies).
        cache_dir, revision, token: passed to the hub download (`huggingface_hub.snapshot_download`).
        A missing or incomplete folder gives a one-line error.
        """
        directory = model_folder(name_or_path, variant, cache_dir=cache_dir, revision=revision, token=token)
        if _is_official(directory):
            pipe = _load_official(directory, text_encoder=text_encoder, vae=vae)
        else:
            pipe = _load_mirokit(directory, text_encoder=text_encoder, vae=vae)
        return pipe.to(device or "cpu", torch_dtype)

    def push_to_hub(self, repo_id: str, *, private: bool | None = None, token: str | None = None,
                    commit_message: str | None = None, revision: str | None = None, create_pr: bool = False,
                    license: str | None = None, base_model: str | list[str] | None = None,
                    eval_results: list[dict] | None = None):
        """Save to a temporary folder (save_pretrained, the card's quickstart loading `repo_id`) and upload it to
        the hub model repo `repo_id` (OWNER/NAME; created if needed) in one commit -> huggingface_hub.CommitInfo.

        private: for a new repo (None: the hub's default). token: None uses HF_TOKEN or the saved login.
        license, base_model, eval_results: the card's (mirokit.model_card.write_model_card). A README.md on the hub
        that mirokit did not write is kept. Any failure is one line naming the repo (mirokit.hub.push_folder).
        """
        import tempfile

        from mirokit.hub import push_folder
        from mirokit.model_card import check_repo_id

        check_repo_id(repo_id)
        card = {"license": license, "base_model": base_model, "eval_results": eval_results}
        with tempfile.TemporaryDirectory(prefix="mirokit-push-") as tmp:
            self.save_pretrained(tmp, card={"repo_id": repo_id, **card})
            return push_folder(tmp, repo_id, private=private, token=token, commit_message=commit_message,
                               revision=revision, create_pr=create_pr, card=card, label="the model")


def _is_official(directory: Path) -> bool:
    if (directory / PIPELINE_NAME).is_file() or not (directory / CONFIG_NAME).is_file():
        return False
    try:
        config = json.loads((directory / CONFIG_NAME).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and "network" in config and "preconditioning" in config


def _load_mirokit(directory: Path, *, text_encoder: str | None, vae: str | None) -> MiroPipeline:
    if not (directory / PIPELINE_NAME).is_file():
        if (directory / "train_state").is_dir():
            raise FileNotFoundError(f"{directory} is a training checkpoint of a sharded run without a model "
                                    f"export; write one with `mirokit export {directory} --out DIR`")
        raise FileNotFoundError(f"not a mirokit model directory: {directory} (missing {PIPELINE_NAME})")
    meta = read_json(directory / PIPELINE_NAME, "pipeline description")
    generator = MiroGenerator.from_pretrained(directory)
    encoder = TextEncoder.from_pretrained(directory / TEXT_ENCODER_DIR)
    if text_encoder is not None:
        encoder = _replace_path(encoder.spec(), text_encoder, "text encoder", build_text_encoder)
    space_spec = meta.get("image_space") or {"kind": "pixels"}
    space = (_replace_path(space_spec, vae, "VAE", build_image_space) if vae is not None
             else build_image_space(space_spec))
    info = DatasetInfo.load(directory)
    extra = {k: v for k, v in meta.items() if k not in ("image_space", "reward_keys", "uncond_text")}
    return MiroPipeline(generator, encoder.eval(), space, extra, info.uncond_text, info.calibration)


def _replace_path(spec: dict, name_or_path: str, what: str, build):
    """Rebuild a component from `spec` with another `name_or_path` (one-line error if it has none)."""
    if "name_or_path" not in spec:
        raise ValueError(f"this model's {what} ({spec.get('kind')}) is not loaded from a path; it cannot be replaced")
    return build({**spec, "name_or_path": str(name_or_path)})


def _load_official(directory: Path, *, text_encoder: str | None, vae: str | None) -> MiroPipeline:
    """A released MIRO checkpoint -> MiroPipeline (frozen FLAN-T5, SDXL-VAE latent space, stored uncond)."""
    from mirokit.models.official import convert_official_config, convert_official_state_dict

    for name in OFFICIAL_FILES:
        if not (directory / name).is_file():
            raise FileNotFoundError(f"official MIRO checkpoint {directory} is missing {name}")
    config = read_json(directory / CONFIG_NAME, "config")
    state = read_weights(directory / WEIGHTS_NAME)
    generator = MiroGenerator(convert_official_config(config))
    load_weights(generator, convert_official_state_dict(state), directory / WEIGHTS_NAME)
    pre = config.get("data_preprocessing", {})
    if "data_preprocessing.scale" in state:
        scale = state["data_preprocessing.scale"].float().flatten().tolist()
        bias = state["data_preprocessing.bias"].float().flatten().tolist()
        normalisation = {"normalisation": "explicit", "scale": scale, "bias": bias}
    elif pre.get("channel_wise_normalisation", True):
        normalisation = {"normalisation": "sdxl_channel_wise"}
    else:
        raise ValueError(f"{directory}: scalar latent normalisation without stored constants is not supported")
    space = build_image_space({"kind": "vae", "name_or_path": vae or config.get("vae_repo", OFFICIAL_VAE),
                               "sample": bool(pre.get("vae_sample", True)), **normalisation})
    encoder = build_text_encoder({"kind": "hf_t5",
                                  "name_or_path": text_encoder or config.get("text_encoder_repo",
                                                                             OFFICIAL_TEXT_ENCODER),
                                  "max_length": int(config.get("max_text_len", 77))})
    if encoder.dim != generator.config.text_dim:
        raise ValueError(f"text encoder {encoder.config.name_or_path} gives {encoder.dim}-d tokens; the model "
                         f"expects {generator.config.text_dim} (label_dim)")
    uncond = torch.from_numpy(np.load(directory / "uncond_embedding.npy", allow_pickle=False).astype(np.float32))
    defaults = config.get("sampler_defaults", {})
    extra = {"source": {"format": "official-miro", "path": str(directory)},
             "sampler_defaults": {"steps": int(defaults.get("num_steps", 50)),
                                  "guidance": float(defaults.get("guidance_scale", 7.0))}}
    return MiroPipeline(generator.eval(), encoder.eval(), space, extra, uncond)
