from pathlib import Path

from mirokit.config_docs import config_reference

ROOT = Path(__file__).resolve().parents[1]


def test_config_reference_is_up_to_date():
    current = (ROOT / "docs" / "CONFIG.md").read_text().strip()
    assert current == config_reference().strip(), "run: python -m mirokit.config_docs > docs/CONFIG.md"


def test_every_config_key_has_a_meaning():
    for line in config_reference().splitlines():
        if line.startswith("| `"):
            assert not line.rstrip().endswith("|  |"), line


def test_readme_documents_the_commands():
    readme = (ROOT / "README.md").read_text()
    for text in ("make demo", "make test", "mirokit train", "mirokit sample", "mirokit demo", "docs/CONFIG.md",
                 "train_state/", "--negative-reward"):
        assert text in readme
