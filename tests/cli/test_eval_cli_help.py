"""Every flag of the nested `mirokit eval ...` and `mirokit generate ...` sub-commands has help text."""

import pytest

from mirokit.cli.main import build_parser


def _subparsers(parser):
    return next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices


@pytest.mark.parametrize("command,expected", [
    ("eval", {"shapes", "rewards", "best-of-n", "sweep", "tune-targets"}),
    ("generate", {"geneval"}),
])
def test_every_nested_flag_is_documented(command, expected):
    nested = _subparsers(_subparsers(build_parser())[command])
    assert expected <= set(nested)
    for name, p in nested.items():
        assert p.description, name
        for action in p._actions:
            if action.dest != "help":
                assert action.help, f"{command} {name} {action.option_strings or action.dest} has no help"


def test_help_prints(capsys):
    for argv in (["generate", "geneval", "--help"], ["eval", "tune-targets", "--help"], ["eval", "sweep", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args(argv)
        assert exit_.value.code == 0
        assert "--preset" in capsys.readouterr().out
