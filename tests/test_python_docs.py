"""Every Python example of docs/PYTHON.md runs as it is, against small models put where the examples look: a
mirokit model with the demo's reward keys and stored sampler at demo_out/runs/miro/model, and a released-layout
MIRO checkpoint (random weights, tiny T5 and VAE) for the hub ids."""

import re
import sys
from pathlib import Path

import pytest
import torch
from conftest import MIRO_T2I_MISSING

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "PYTHON.md").read_text(), re.S)
KEYS = ["world_alignment", "world_quality", "world_composition"]


def _demo_like_model(folder: Path) -> None:
    from mirokit.encoders import TokenTextEncoder, TokenTextEncoderConfig
    from mirokit.models import ConditioningConfig, GeneratorConfig, MiroGenerator
    from mirokit.models.unet import UNetConfig
    from mirokit.pipeline import MiroPipeline

    torch.manual_seed(0)
    text = TokenTextEncoder(TokenTextEncoderConfig(vocab_size=64, dim=16, max_length=8, num_layers=1, num_heads=4))
    generator = MiroGenerator(GeneratorConfig(
        image_channels=3, image_size=16, reward_keys=KEYS, text_dim=16,
        backbone=UNetConfig(channels=[16, 32], attention_levels=[1], cond_dim=32, heads=4),
        conditioning=ConditioningConfig(num_registers=2, mixer_layers=1, mixer_heads=4), logvar_channels=16))
    defaults = {"solver": "ab2", "steps": 3, "guidance": 3.0, "negative_rewards": {k: None for k in KEYS}}
    MiroPipeline(generator, text, extra={"sampler_defaults": defaults}).save_pretrained(folder)


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """{string in the examples: the local folder standing in for it}."""
    root = tmp_path_factory.mktemp("docs")
    _demo_like_model(root / "demo_out" / "runs" / "miro" / "model")
    found = {"demo_out/runs/miro/model": str(root / "demo_out" / "runs" / "miro" / "model")}
    if pytest.importorskip("miro.models.networks.rin", reason=MIRO_T2I_MISSING):
        sys.path.insert(0, str(ROOT / "tests" / "models"))
        import test_official_pipeline as official

        parts = official.parts.__wrapped__(tmp_path_factory)
        found.update({"nicolas-dufour/miro-ablations": str(parts["root"] / "ablations"),
                      "nicolas-dufour/miro": str(parts["root"] / "miro"), "google/flan-t5-xl": str(parts["t5"]),
                      "stabilityai/sdxl-vae": str(parts["vae_dir"])})
    return found


def test_the_page_has_examples():
    assert len(BLOCKS) >= 6 and all("MiroPipeline" in b for b in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_every_example_runs(places, index, tmp_path, monkeypatch):
    code = BLOCKS[index]
    for name, local in places.items():  # longest first: the ablations repo before the main one
        code = code.replace(f'"{name}"', repr(local))
    assert "nicolas-dufour" not in code and "demo_out" not in code.replace(repr(places["demo_out/runs/miro/model"]), "")
    monkeypatch.chdir(tmp_path)  # examples that save images write here
    exec(compile(code, f"docs/PYTHON.md example {index}", "exec"), {"__name__": "__docs__"})
