import re
import shlex
from pathlib import Path

from mirokit.cli.docs import cli_reference, option_strings, subcommands
from mirokit.cli.main import build_parser
from mirokit.config_docs import config_reference

ROOT = Path(__file__).resolve().parents[1]


def test_config_reference_is_up_to_date():
    current = (ROOT / "docs" / "CONFIG.md").read_text().strip()
    assert current == config_reference().strip(), "run: python -m mirokit.config_docs > docs/CONFIG.md"


def test_every_config_key_has_a_meaning():
    for line in config_reference().splitlines():
        if line.startswith("| `"):
            assert not line.rstrip().endswith("|  |"), line


def test_the_readme_is_a_product_page():
    """The two commands, a link to every page of docs/, and short: reference lives in docs/, tables in BENCHMARKS.md."""
    readme = (ROOT / "README.md").read_text()
    for text in ("make demo", "make test", "mirokit sample", "MiroPipeline.from_pretrained", "torchrun",
                 "mirokit eval geneval", "BENCHMARKS.md"):
        assert text in readme, text
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"](docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"
    words = len(readme.split())
    assert words <= 1500, f"README.md has {words} words; move reference to docs/"


# ---- the docs name only commands and flags that exist, and their links resolve ------------------------------

PAGES = [ROOT / "README.md", ROOT / "BENCHMARKS.md", ROOT / "RELIABILITY.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console", "text"}


def test_cli_reference_is_up_to_date():
    current = (ROOT / "docs" / "CLI.md").read_text()
    assert current == cli_reference(), "run: python -m mirokit.cli.docs > docs/CLI.md"


def command_lines(text: str) -> list[str]:
    """Shell lines of the page's code blocks (continuations joined) and its inline code that start `mirokit `."""
    lines, block, language = [], None, ""
    for line in text.splitlines():
        fence = re.match(r"^\s*```(\w*)", line)
        if fence:
            block, language = (None, "") if block is not None else ([], fence.group(1))
            continue
        if block is None:
            lines += re.findall(r"`(mirokit [^`]+)`", line)
        elif language in SHELL_BLOCKS:
            if lines and lines[-1].endswith("\\"):
                lines[-1] = lines[-1][:-1] + " " + line.strip()
            else:
                lines.append(line.strip())
    return [line for line in lines if re.match(r"(\w+=\S+\s+)*mirokit\s", line) or "-m mirokit.cli.main " in line]


def check_command(line: str, parser) -> str | None:
    """None if the `mirokit` command in `line` exists and knows every flag it is given, else what is wrong."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError:
        tokens = line.split()
    starts = [i for i, t in enumerate(tokens) if t in ("mirokit", "mirokit.cli.main")]
    if not starts:
        return None
    tokens = tokens[starts[0] + 1:]
    path = ["mirokit"]
    for token in tokens:
        token = token.strip("[]")
        if token in ("|", ";", "&&", ">", "2>&1"):
            break
        if token.startswith("--") and len(token) > 2:
            flag = token.split("=")[0]
            if flag not in option_strings(parser):
                return f"{' '.join(path)} has no flag {flag}"
        elif subcommands(parser) and not token.startswith("-"):
            if re.fullmatch(r"[A-Z_]+:?|\.\.\.", token):
                break  # a placeholder (COMMAND, KIND, ...): nothing more to check
            if token not in subcommands(parser):
                return f"{' '.join(path)} has no command {token!r}"
            parser = subcommands(parser)[token]
            path.append(token)
    return None


def test_every_command_in_the_docs_exists():
    parser = build_parser()
    wrong = [f"{page.name}: {line[:90]}: {problem}" for page in PAGES
             for line in command_lines(page.read_text()) if (problem := check_command(line, parser))]
    assert not wrong, "\n".join(wrong)


def test_the_docs_check_can_fail():
    parser = build_parser()
    assert check_command("mirokit encode --stats", parser) == "mirokit encode has no flag --stats"
    assert check_command("mirokit eval rewardz --out x", parser) == "mirokit eval has no command 'rewardz'"
    assert check_command("torchrun --nproc_per_node 8 -m mirokit.cli.main train --config x --bogus", parser)
    assert check_command("mirokit sample --model m --prompt 'a b' --reward k=1 --out o", parser) is None
    text = "```bash\nmirokit sample --model m \\\n    --nope 1\n```\nsee `mirokit encode --no-stats`"
    assert command_lines(text) == ["mirokit sample --model m  --nope 1", "mirokit encode --no-stats"]


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(m) for m in re.findall(r"^#+\s+(.*)$", text, flags=re.M)}


def test_relative_links_resolve():
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
