"""A text-only language model that shortens long captions (the public CC12M recaptioning's second step: a VLM
writes the long caption, an LLM shortens it for the 77-token scorers).

Loads any causal LM through `AutoTokenizer` + `AutoModelForCausalLM` by hub id or local folder; the prompt is
the tokenizer's chat template over the instruction and the long caption (plain text when it has none). Prompts
are padded on the left and greedy decoding is deterministic.
"""

from __future__ import annotations

import torch

from mirokit.captions.vlm import decode_new_tokens, load_pretrained

SHORTEN_INSTRUCTION = "Shorten this image caption to one sentence of at most 20 words: {caption}"


class TextShortener:
    """model: hub id or local folder of a causal LM. instruction: the request, with the long caption as
    {caption}."""

    def __init__(self, model: str, *, instruction: str = SHORTEN_INSTRUCTION, max_new_tokens: int = 40,
                 dtype: str = "fp32", device: str = "cpu", trust_remote_code: bool = False):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if "{caption}" not in instruction:
            raise ValueError(f"the shortening instruction must contain {{caption}}, got {instruction!r}")
        self.tokenizer, self.model = load_pretrained(
            model, "shortening model", dtype, device, trust_remote_code, AutoTokenizer, AutoModelForCausalLM,
            max_new_tokens=max_new_tokens)
        self.settings = {"model": model, "instruction": instruction, "max_new_tokens": max_new_tokens,
                         "dtype": dtype}
        self.device = device

    def _prompt(self, caption: str) -> str:
        text = self.settings["instruction"].format(caption=caption)
        if getattr(self.tokenizer, "chat_template", None) is None:
            return text
        return self.tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                                  tokenize=False)

    @torch.no_grad()
    def shorten(self, captions: list[str]) -> list[str]:
        """N long captions -> N short ones (greedy)."""
        if not captions:
            return []
        inputs = self.tokenizer([self._prompt(c) for c in captions], padding=True, return_tensors="pt",
                                add_special_tokens=False).to(self.device)
        return decode_new_tokens(self.model, self.tokenizer, inputs,
                                 {"max_new_tokens": self.settings["max_new_tokens"], "do_sample": False})

    def describe(self) -> dict:
        """What shortened the captions (kind, model class, instruction, generation settings), for the manifest."""
        return {"kind": "text_shortener", "class": type(self.model).__name__, **self.settings}
