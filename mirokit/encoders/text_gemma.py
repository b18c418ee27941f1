"""Sana's frozen text encoder (kind "sana_text"): a Gemma(-2) decoder used as an encoder, as diffusers'
`SanaPipeline` does.

From a pipeline folder or hub id (e.g. Efficient-Large-Model/Sana_600M_1024px_diffusers): `text_encoder`
(`Gemma2Model`, or any Gemma `AutoModel`) and `tokenizer`. As in the pipeline's `encode_prompt`
(`clean_caption=False`): each caption is lower-cased and stripped; with an `instruction` (the pipeline's
`complex_human_instruction`, its lines joined by "\\n") the instruction is prepended to the caption, the caption is
tokenised (right padding, special tokens: Gemma's <bos>) to `tokens(instruction) + max_length - 2` tokens, Gemma runs
with that attention mask, and its last hidden state keeps the first token and the last `max_length - 1` ones (the
pipeline's `select_index`: the instruction's tokens are dropped, the caption's are kept); without one, the caption
is tokenised to `max_length` tokens. The empty caption "" is encoded without the instruction, as the pipeline
encodes its negative prompt. Output (B, max_length, hidden_size) and the tokenizer's attention mask (after the same
selection); padded positions are zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mirokit.encoders.hub import load_part_config
from mirokit.encoders.text import TEXT_ENCODERS, TextEncoderConfig
from mirokit.encoders.text_parts import PipelineTextEncoder, check_length

GEMMA_TYPES = ("gemma2", "gemma", "gemma3_text")
SANA_INSTRUCTION = "\n".join([
    "Given a user prompt, generate an 'Enhanced prompt' that provides detailed visual descriptions suitable for image "
    "generation. Evaluate the level of detail in the user prompt:",
    "- If the prompt is simple, focus on adding specifics about colors, shapes, sizes, textures, and spatial "
    "relationships to create vivid and concrete scenes.",
    "- If the prompt is already detailed, refine and enhance the existing details slightly without "
    "overcomplicating.",
    "Here are examples of how to transform or refine prompts:",
    "- User Prompt: A cat sleeping -> Enhanced: A small, fluffy white cat curled up in a round shape, sleeping "
    "peacefully on a warm sunny windowsill, surrounded by pots of blooming red flowers.",
    "- User Prompt: A busy city street -> Enhanced: A bustling city street scene at dusk, featuring glowing street "
    "lamps, a diverse crowd of people in colorful clothing, and a double-decker bus passing by towering glass "
    "skyscrapers.",
    "Please generate only the enhanced description for the prompt below and avoid including any additional "
    "commentary or evaluations:",
    "User Prompt: ",
])
"""SanaPipeline's default complex_human_instruction (diffusers 0.42), joined by "\\n" as the pipeline joins it"""


@dataclass(kw_only=True)
class SanaTextEncoderConfig(TextEncoderConfig):
    """Sana's Gemma text encoder from a diffusers pipeline folder or hub id (kind: sana_text)."""

    name_or_path: str = "Efficient-Large-Model/Sana_600M_1024px_diffusers"
    """Sana pipeline hub id or local folder (text_encoder/ and tokenizer/)"""
    max_length: int = 300
    """tokens per caption L (the pipeline's max_sequence_length)"""
    instruction: str | None = None
    """text prepended to every non-empty caption, whose tokens are then dropped (the pipeline's
    complex_human_instruction joined by newlines; `mirokit.encoders.text_gemma.SANA_INSTRUCTION` is its default);
    null: none"""
    dtype: str = "fp32"
    """weights dtype: fp32, bf16 or fp16; outputs are always float32"""

    def __post_init__(self) -> None:
        if not isinstance(self.name_or_path, str) or not self.name_or_path:
            raise ValueError(f"text_encoder (sana_text): name_or_path must be a non-empty string, "
                             f"got {self.name_or_path!r}")
        check_length(self.max_length, "max_length", "text_encoder (sana_text)")
        if self.max_length < 2:
            raise ValueError("text_encoder (sana_text): max_length must be at least 2")
        if self.instruction is not None and not isinstance(self.instruction, str):
            raise ValueError(f"text_encoder (sana_text): instruction must be a string or null, "
                             f"got {type(self.instruction).__name__}")


@TEXT_ENCODERS.register("sana_text", config=SanaTextEncoderConfig,
                        description="Sana's frozen Gemma decoder as a text encoder, as its pipeline")
class SanaTextEncoder(PipelineTextEncoder):
    """`forward(captions)` -> (Gemma's last hidden state (B, max_length, hidden_size) float32, mask (B, max_length)
    bool). Not trainable: `save_pretrained` writes only config.json."""

    what = "Sana text encoder"

    def __init__(self, config: SanaTextEncoderConfig | None = None, **options) -> None:
        """`config`: a SanaTextEncoderConfig (or, with `options`, its keys)."""
        super().__init__(config or SanaTextEncoderConfig(**options))
        self.max_length = self.config.max_length
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        """Output width (Gemma's hidden_size, Sana's caption_channels), read from the config without the weights."""
        if self._dim is None:
            config = load_part_config(self.config.name_or_path, self.local, "text_encoder", self.what, GEMMA_TYPES)
            self._dim = int(config.hidden_size)
        return self._dim

    def load_parts(self) -> list:
        """[tokenizer, Gemma model]."""
        from transformers import AutoModel, AutoTokenizer

        self.dim  # noqa: B018  (checks the model type before loading weights)
        tokenizer = self.part(AutoTokenizer, "tokenizer", tokenizer=True)
        if tokenizer.pad_token_id is None:
            raise ValueError(f"{self.what} {self.config.name_or_path}: its tokenizer has no pad token")
        model = self.part(AutoModel, "text_encoder")
        if len(tokenizer) > model.config.vocab_size:
            raise ValueError(f"{self.what} {self.config.name_or_path}: the tokenizer has {len(tokenizer)} tokens but "
                             f"the model only {model.config.vocab_size}")
        return [tokenizer, model]

    def _run(self, tokenizer, model, captions: list[str], length: int, device) -> tuple[Tensor, Tensor]:
        tokens = tokenizer(captions, padding="max_length", max_length=length, truncation=True,
                           add_special_tokens=True, return_tensors="pt")
        mask = tokens.attention_mask.to(device)
        return model(tokens.input_ids.to(device), attention_mask=mask)[0], mask

    def encode(self, captions: list[str], parts: list, device: torch.device) -> tuple[Tensor, Tensor]:
        """The pipeline's _get_gemma_prompt_embeds + select_index, per group (with / without the instruction)."""
        tokenizer, model = parts
        captions = [c.lower().strip() for c in captions]
        length, instruction = self.max_length, self.config.instruction
        emb = torch.zeros(len(captions), length, self.dim, device=device)
        mask = torch.zeros(len(captions), length, dtype=torch.long, device=device)
        plain = [i for i, c in enumerate(captions) if not instruction or not c]
        led = [i for i in range(len(captions)) if i not in set(plain)]
        if plain:
            emb[plain], mask[plain] = (t.to(emb.dtype if t.is_floating_point() else mask.dtype) for t in
                                       self._run(tokenizer, model, [captions[i] for i in plain], length, device))
        if led:
            total = len(tokenizer.encode(instruction)) + length - 2
            states, led_mask = self._run(tokenizer, model, [instruction + captions[i] for i in led], total, device)
            select = [0, *range(total - length + 1, total)]  # the pipeline's [0] + range(-max_length + 1, 0)
            emb[led], mask[led] = states[:, select].float(), led_mask[:, select].to(mask.dtype)
        return emb, mask.bool()
