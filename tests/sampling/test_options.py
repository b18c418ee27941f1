"""Every surface of a sampling setting derives from its one declaration in SamplingSettings."""

import argparse
import inspect

import pytest

from mirokit.cli.sampling_flags import add_sampling_flags, explicit_settings
from mirokit.evaluate.sweep import PARAMS, parse_sweep
from mirokit.pipeline import MiroPipeline
from mirokit.sampling import SamplingSettings, resolve
from mirokit.sampling.options import SURFACES, declared, names, studio_controls, to_argv, to_keywords

EXAMPLE = SamplingSettings(rewards={"a": 0.25, "b": None}, negative_rewards={"a": 0.5}, solver="heun", steps=7,
                           shift=1.5, text_guidance=2.0, reward_guidance=3.5, guidance_interval=(0.125, 0.875),
                           seed=3, batch_size=2)


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_sampling_flags(parser)
    return parser.parse_args(argv)


def test_every_field_is_declared_with_known_surfaces():
    for name, (opt, default) in declared(SamplingSettings).items():
        assert opt.surfaces <= SURFACES and opt.help, name
        assert opt.check(name, default) == default  # the declared default passes its own check


def test_the_command_line_gives_back_every_setting():
    args = _parse(to_argv(EXAMPLE))
    assert resolve(explicit_settings(args)) == EXAMPLE
    assert set(explicit_settings(_parse([]))) == set(names(SamplingSettings, "cli"))
    with pytest.raises(SystemExit):
        _parse(["--guidance-interval", "0.2-0.8"])  # not LO:HI: refused by argparse with the flag named


def test_the_python_call_takes_every_setting_and_nothing_else():
    keywords = eval(f"dict({to_keywords(EXAMPLE)})")  # the text the studio shows as Python
    assert resolve(keywords) == EXAMPLE
    assert set(keywords) == set(names(SamplingSettings, "call"))
    signature = inspect.signature(MiroPipeline.__call__)
    assert any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    with pytest.raises(ValueError, match="unknown keyword 'temperature'; sampling settings: rewards"):
        MiroPipeline.__call__(object.__new__(MiroPipeline), "a prompt", temperature=1.0)


def test_studio_sweep_and_presets_follow_the_declaration():
    controls = [c["name"] for c in studio_controls(SamplingSettings)]
    assert controls == [n for n in names(SamplingSettings, "studio") if n not in ("rewards", "negative_rewards")]
    assert "guidance_interval" in controls and "batch_size" not in controls
    assert list(PARAMS) == names(SamplingSettings, "sweep")
    for param in PARAMS:  # every sweepable setting takes its own default, written as text
        default = declared(SamplingSettings)[param][1]
        text = "full" if default is None else str(default)
        assert parse_sweep(f"{param}={text}", [])[1] == [default]
    assert set(EXAMPLE.to_preset()) == set(names(SamplingSettings, "preset"))
