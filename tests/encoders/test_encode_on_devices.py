"""The encode job's batch (mirokit encode: the VAE's moments and the T5's states of one batch) on a non-CPU device
without a GPU (tests/devices.py), with the suite's tiny VAE and T5."""

import pytest
import torch
from conftest import build_tiny_vae_and_t5
from devices import on_device, stopped_in

from mirokit.encoders.encode_job import EncodeJobConfig, Encoders


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    return build_tiny_vae_and_t5(tmp_path_factory.mktemp("encode"))


def _config(parts, device: str) -> EncodeJobConfig:
    return EncodeJobConfig(inputs=[], out_dir="unused", rewards=[], vae=str(parts / "vae"),
                           text_encoder=str(parts / "t5"), max_length=8, batch_size=2, device=device)


def test_an_encode_batch_runs_in_bf16_on_fake_cuda(parts):
    """On CUDA the VAE and the T5 hold bfloat16 weights; the moments and the states of a batch come back once each
    (the states and their mask in one copy, then cut to the valid tokens on the host)."""
    with on_device("cuda") as dev:
        encoders = Encoders(_config(parts, "cuda"))
        moments = encoders.vae.encode_moments(torch.rand(3, 3, 16, 16) * 2 - 1).cpu()
        states = encoders.texts(["a red circle", "blue", "a big green square"])
        assert encoders.vae.vae.dtype == torch.bfloat16 and encoders.text.load()._loaded[1].dtype == torch.bfloat16
    assert moments.shape == (3, 8, 8, 8) and len(states) == 3
    assert dev.readbacks == [(3, 8, 8, 8), (3, 8, 32), (3, 8)]


def test_the_vae_encodes_on_meta_and_t5_stops_in_transformers(parts):
    with on_device("meta") as dev:
        encoders = Encoders(_config(parts, "meta"))
        moments = encoders.vae.encode_moments(torch.rand(3, 3, 16, 16) * 2 - 1)
        assert moments.device.type == "meta" and tuple(moments.shape) == (3, 8, 8, 8)
        with pytest.raises(RuntimeError, match="cannot be called on meta tensors") as caught:
            encoders.texts(["a red circle"])
    assert stopped_in(caught.value, "transformers/masking_utils.py") and dev.readbacks == []
