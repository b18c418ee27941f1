"""ShapesEval: GenEval's six tasks over the shapes vocabulary, in GenEval's metadata schema.

553 prompts with GenEval's per-task counts (single_object 80, two_object 99, counting 80,
colors 94, position 100, color_attr 100) and its wording. The shape vocabulary is small, so tasks
with fewer distinct prompts than GenEval's count repeat them (each about equally often); the
shipped file `shapes_eval.jsonl` is `make_shapes_eval_prompts(0)`, regenerated with
`python -m mirokit.world.prompts`.
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

from mirokit.atomic import write_atomic
from mirokit.world.captions import GENEVAL_TAGS, Group, geneval_prompt
from mirokit.world.vocab import COLOURS, RELATIONS, SHAPES

TASK_COUNTS = {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100,
               "color_attr": 100}
"""Prompts per task, as in GenEval's evaluation_metadata.jsonl."""
SHAPES_EVAL_PATH = Path(__file__).with_name("shapes_eval.jsonl")


def _pool(tag: str) -> list[tuple[list[Group], str | None]]:
    """Every distinct (groups, relation) a task can ask for, in a fixed order."""
    pairs = list(itertools.permutations(SHAPES, 2))
    if tag == "single_object":
        return [([Group(s, 1)], None) for s in SHAPES]
    if tag == "two_object":
        return [([Group(a, 1), Group(b, 1)], None) for a, b in pairs]
    if tag == "counting":
        return [([Group(s, n)], None) for s in SHAPES for n in (2, 3, 4)]
    if tag == "colors":
        return [([Group(s, 1, c)], None) for s in SHAPES for c in COLOURS]
    if tag == "position":
        return [([Group(a, 1), Group(b, 1)], r) for a, b in pairs for r in RELATIONS]
    return [([Group(a, 1, ca), Group(b, 1, cb)], None)
            for a, b in pairs for ca, cb in itertools.permutations(COLOURS, 2)]


def make_shapes_eval_prompts(seed: int = 0) -> list[dict]:
    """The ShapesEval prompts (GenEval metadata dicts: tag, include, exclude?, prompt), grouped by task.

    Each task's distinct prompts are shuffled with `random.Random(seed)` (stable across Python
    versions) and taken in order, cycling when the task needs more prompts than exist.
    """
    rng = random.Random(seed)
    prompts = []
    for tag in GENEVAL_TAGS:
        pool = _pool(tag)
        rng.shuffle(pool)
        for k in range(TASK_COUNTS[tag]):
            groups, relation = pool[k % len(pool)]
            prompts.append(geneval_prompt(tag, groups, relation)[1])
    return prompts


def write_shapes_eval(path: str | Path = SHAPES_EVAL_PATH, seed: int = 0) -> Path:
    """Write `make_shapes_eval_prompts(seed)` as JSONL (one metadata object per line) -> path."""
    return write_atomic(path, "".join(json.dumps(p) + "\n" for p in make_shapes_eval_prompts(seed)))


def load_shapes_eval(path: str | Path | None = None) -> list[dict]:
    """Read a GenEval-schema prompt file (default: the shipped ShapesEval) -> list of metadata dicts.

    Each non-empty line must be a JSON object with "tag", "include" (list) and "prompt"; anything
    else raises a one-line ValueError naming file and line.
    """
    path = Path(path) if path is not None else SHAPES_EVAL_PATH
    if not path.is_file():
        raise FileNotFoundError(f"prompt file not found: {path}")
    items = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: not valid JSON ({err.msg})") from None
        if not isinstance(item, dict) or not isinstance(item.get("include"), list) \
                or not isinstance(item.get("prompt"), str) or "tag" not in item:
            raise ValueError(f"{path}:{number}: expected an object with 'tag', 'include' (list) and 'prompt'")
        items.append(item)
    if not items:
        raise ValueError(f"{path}: no prompts")
    return items


def derangement(prompts: list[dict], seed: int = 0) -> list[int]:
    """A deterministic permutation `src` with src[i] != i and, where possible, a different prompt text
    (ShapesEval repeats prompts): used to render each prompt's images from another prompt."""
    n = len(prompts)
    if n < 2:
        raise ValueError("a derangement needs at least 2 prompts")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    src = [0] * n
    for k in range(n):  # one cycle through a shuffled order never maps an index to itself
        src[order[k]] = order[(k + 1) % n]
    text = [p.get("prompt") for p in prompts]
    for i in range(n):
        if text[src[i]] != text[i]:
            continue
        for j in range(n):  # swap sources with a j for which both end up with different texts
            if j != i and src[j] != i and src[i] != j and text[src[j]] != text[i] and text[src[i]] != text[j]:
                src[i], src[j] = src[j], src[i]
                break
    return src


if __name__ == "__main__":
    print(f"wrote {write_shapes_eval()}")
