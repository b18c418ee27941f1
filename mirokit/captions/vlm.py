"""Captions from any chat vision-language model of transformers, by hub id or local folder.

Loads through the generic classes (`AutoProcessor` + `AutoModelForImageTextToText`): LLaVA / LLaVA-Next /
OneVision, SmolVLM / Idefics3, Qwen2-VL / 2.5-VL, InternVL, PaliGemma and the like. The prompt is the processor's
chat template over one image and the instruction (with the original caption as an alt-text hint where asked);
models prompted with task tokens instead (Florence-2: "<MORE_DETAILED_CAPTION>") take `chat_template=False`.
Prompts are padded on the left, only the new tokens are decoded, and greedy decoding is deterministic.
"""

from __future__ import annotations

import torch

from mirokit.captions.registry import CAPTIONERS
from mirokit.dtypes import dtype_named
from mirokit.sources import locate

INSTRUCTION = "Write a detailed but succinct caption of this image."
HINT = "Here is the alt-text of the image, which may be wrong or incomplete: {alt_text}"
SHORT_INSTRUCTION = "Describe this image in one short sentence."
NESTED_IMAGES = ("Idefics", "SmolVLM", "Mllama")
"""processors that take one list of images per prompt"""


def load_pretrained(model: str, what: str, dtype: str, device: str, trust_remote_code: bool, preprocessor_class,
                    model_class, *, max_new_tokens: int) -> tuple:
    """(preprocessor, model in eval mode on `device`) from a hub id or local folder (mirokit.sources decides);
    the tokenizer pads on the left. A missing folder, an unloadable model or a bad setting (dtype: fp32, bf16,
    fp16) is a one-line error naming `what`."""
    torch_dtype = dtype_named(dtype, f"{what} dtype")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    model, _ = locate(model, what)
    try:
        preprocessor = preprocessor_class.from_pretrained(model, trust_remote_code=trust_remote_code)
        network = model_class.from_pretrained(model, dtype=torch_dtype, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"{what} {model!r} could not be loaded: "
                                f"{str(err).strip().splitlines()[0]}") from None
    network.to(device).eval()
    tokenizer = getattr(preprocessor, "tokenizer", preprocessor)
    tokenizer.padding_side = "left"  # generation continues every prompt from its last token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return preprocessor, network


def decode_new_tokens(model, tokenizer, inputs, options: dict) -> list[str]:
    """Generate from a left-padded batch (`inputs`: input_ids [N, L], attention_mask, ...) and decode only the
    new tokens, whitespace normalised -> N strings."""
    out = model.generate(**inputs, **options, pad_token_id=tokenizer.pad_token_id)
    new = out[:, inputs["input_ids"].shape[1]:]
    return [" ".join(text.split()) for text in tokenizer.batch_decode(new, skip_special_tokens=True)]


@CAPTIONERS.register("vlm", description="any transformers chat VLM (AutoModelForImageTextToText), by hub id or folder")
class VLMCaptioner:
    """model: hub id or local folder. instruction: what to ask; hint: appended with the original caption as
    {alt_text} (when `use_hint` and the sample has one); short_instruction: the second, short pass."""

    def __init__(self, model: str, *, instruction: str = INSTRUCTION, hint: str = HINT, use_hint: bool = True,
                 short_instruction: str = SHORT_INSTRUCTION, max_new_tokens: int = 96, do_sample: bool = False,
                 temperature: float = 1.0, top_p: float = 1.0, seed: int = 0, dtype: str = "fp32",
                 device: str = "cpu", chat_template: bool = True, trust_remote_code: bool = False):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.processor, self.model = load_pretrained(model, "captioner model", dtype, device, trust_remote_code,
                                                     AutoProcessor, AutoModelForImageTextToText,
                                                     max_new_tokens=max_new_tokens)
        self.settings = {"model": model, "instruction": instruction, "hint": hint if use_hint else None,
                         "short_instruction": short_instruction, "max_new_tokens": max_new_tokens,
                         "do_sample": do_sample, "temperature": temperature, "top_p": top_p, "seed": seed,
                         "dtype": dtype, "chat_template": chat_template}
        self.device = device

    def _prompt(self, instruction: str, hint: str | None) -> str:
        text = instruction
        if hint and self.settings["hint"]:
            text = f"{instruction} {self.settings['hint'].format(alt_text=hint)}"
        if not self.settings["chat_template"]:
            return text
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        return self.processor.apply_chat_template(messages, add_generation_prompt=True)

    @torch.no_grad()
    def caption(self, images: list, hints: list[str | None], *, short: bool = False) -> list[str]:
        """N PIL images (+ N alt-text hints or None) -> N captions (one short sentence with `short`)."""
        if not images:
            return []
        inputs = self.model_inputs(images, hints, short=short)
        s = self.settings
        options = {"max_new_tokens": s["max_new_tokens"], "do_sample": s["do_sample"]}
        if s["do_sample"]:
            torch.manual_seed(s["seed"])
            options.update(temperature=s["temperature"], top_p=s["top_p"])
        return decode_new_tokens(self.model, getattr(self.processor, "tokenizer", self.processor), inputs, options)

    def model_inputs(self, images: list, hints: list[str | None], *, short: bool = False) -> dict:
        """The processor's batch for N images (+ hints) on the model's device, pixel values in the model's dtype:
        what `generate` is called with."""
        instruction = self.settings["short_instruction"] if short else self.settings["instruction"]
        prompts = [self._prompt(instruction, None if short else hint) for hint in hints]
        nested = any(name in type(self.processor).__name__ for name in NESTED_IMAGES)
        inputs = self.processor(text=prompts, images=[[im] for im in images] if nested else list(images),
                                padding=True, return_tensors="pt")
        inputs = {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in inputs.items()}
        if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        return inputs

    def describe(self) -> dict:
        """What wrote the captions (kind, model class, instructions, generation settings), for the manifest."""
        return {"kind": "vlm", "class": type(self.model).__name__, **self.settings}
