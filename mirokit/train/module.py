"""The module that is trained, averaged (EMA) and wrapped by DDP: generator + trainable text encoder."""

from __future__ import annotations

from torch import Tensor, nn

from mirokit.encoders.text import TextEncoder
from mirokit.models.generator import GeneratorOutput, MiroGenerator


class TrainModule(nn.Module):
    """Generator plus the text encoder when it is trainable (a frozen encoder stays outside).

    Same call signature as the generator, plus `captions=` to encode text inside the forward,
    so DDP sees every trained parameter used in its own forward pass.
    """

    def __init__(self, generator: MiroGenerator, text_encoder: TextEncoder | None):
        super().__init__()
        self.generator = generator
        self.text_encoder = text_encoder if text_encoder is not None and text_encoder.trainable else None

    def blocks(self) -> list[nn.Module]:
        """Units for sharding / activation checkpointing / compile: the generator's, then the encoder's."""
        return [*self.generator.blocks(), *(self.text_encoder.blocks() if self.text_encoder is not None else [])]

    def forward(self, y: Tensor, gamma: Tensor, *, self_cond: Tensor | None = None, rewards: Tensor | None = None,
                captions: list[str] | None = None, text: Tensor | None = None,
                text_mask: Tensor | None = None) -> GeneratorOutput:
        """y: (B, C, H, W); gamma: (B,); either captions (B strings, trainable encoder) or text/text_mask."""
        if captions is not None:
            text, text_mask = self.text_encoder(captions)
            text, text_mask = text.to(y.device), text_mask.to(y.device)
        return self.generator(y, gamma, text=text, text_mask=text_mask, rewards=rewards, self_cond=self_cond)
