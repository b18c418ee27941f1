"""The recaption model on a non-CPU device without a GPU (tests/devices.py), with the suite's tiny LLaVA: the
processor's batch reaches the device in the model's dtype, and the network's first forward pass (what `generate`
runs first) runs there. `generate` itself cannot: it reads the chosen tokens every step (docs/TESTING.md)."""

import pytest
import torch
from devices import ValueOnDevice, on_device, stopped_in
from PIL import Image
from vlm_kit import save_tiny_llava

from mirokit.captions import build_captioner


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    return save_tiny_llava(tmp_path_factory.mktemp("llava") / "llava")


@pytest.mark.parametrize("device", ["meta", "cuda"])
def test_the_captioners_batch_and_first_forward_run_on_the_device(llava, device, monkeypatch):
    images = [Image.new("RGB", (30, 30), (250, 0, 0)), Image.new("RGB", (20, 40), (0, 0, 250))]
    with on_device(device) as dev:
        captioner = build_captioner("vlm", model=str(llava), max_new_tokens=4, device=device, dtype="bfloat16")
        inputs = captioner.model_inputs(images, ["a red thing", None])
        tensors = {k: v for k, v in inputs.items() if torch.is_tensor(v)}
        assert set(tensors) >= {"input_ids", "attention_mask", "pixel_values"}
        assert all(v.device.type == device for v in tensors.values())
        assert tensors["pixel_values"].dtype == torch.bfloat16
        # transformers checks the image placeholders by reading a value (torch_compilable_check), unless told not to
        with pytest.raises((RuntimeError, ValueOnDevice), match="item") as caught:
            captioner.model(**inputs)
        assert stopped_in(caught.value, "transformers/utils/import_utils.py")
        monkeypatch.setenv("TRANSFORMERS_DISABLE_TORCH_CHECK", "1")
        if device == "cuda":
            logits = captioner.model(**inputs).logits
            assert logits.device.type == "cuda" and tuple(logits.shape[:2]) == tuple(inputs["input_ids"].shape)
        else:  # the language model's padding mask is read (masking_utils) unless the tensors are fake
            with pytest.raises(RuntimeError, match="cannot be called on meta tensors") as caught:
                captioner.model(**inputs)
            assert stopped_in(caught.value, "transformers/masking_utils.py")
    assert dev.readbacks == []
