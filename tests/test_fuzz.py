"""Fuzzing mirokit's input readers with hypothesis (issue 24): bad input is a one-line error naming the item, or a
counted bad row; never another exception type, a traceback or a silent loss. Through the functions the CLI uses:
- tar shards (`rewards.inputs.iter_tar` over `tars.iter_samples`: score, encode, recaption) with odd member names
  (dots, slashes, duplicates, empty extensions, unicode), caption bytes, JSON-ish metadata, cuts, random bytes: each
  key once, usable or a bad row of a known kind; a cut that loses data is counted;
- captions (`tars.caption_of`): a stripped UTF-8 caption (never replacement characters), None, or a CaptionError;
- sampling presets (`load_preset` on any file; the studio's `plan` with inline presets and fuzzed request fields);
- run configs (`load_run_config`: YAML files + `a.b=value` overrides): scalar fields of their declared types;
- reward targets (`--reward KEY=VALUE`: `parse_key_values`, then `resolve`): each in [0, 1] or None, none dropped;
- JSONL inputs (training `JsonlImageDataset`, scoring `InputUnit.samples`): valid lines kept, the rest counted.
Reproducible everywhere (derandomize, no example database, no deadline); hypothesis' caches go to the system's
temporary folder, not the checkout."""

import dataclasses
import io
import json
import math
import tarfile
import tempfile
import typing
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from PIL import Image

from mirokit.config import _unwrap_optional, parse_key_values
from mirokit.data import DataError, JsonlImageDataset
from mirokit.rewards.inputs import InputUnit, iter_tar
from mirokit.sampling import SamplingSettings, resolve
from mirokit.sampling.presets import load_preset
from mirokit.studio.requests import Limits, plan
from mirokit.tars import MAX_CAPTION_CHARS, CaptionError, caption_of, split_member, utf8_text
from mirokit.train.config import BUILTIN_CONFIGS, load_run_config

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "mirokit-hypothesis")  # no .hypothesis/ in the checkout


def fuzz(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def one_line(err: BaseException | str, *names: str) -> str:
    """The error's message, checked: non-empty, one line, naming each of `names`."""
    message = str(err)
    assert message.strip() and "\n" not in message and "\r" not in message, repr(message)
    assert all(name in message for name in names), (names, message)
    return message


# JSON-ish values: every JSON type, NaN/inf, huge integers, odd keys, a lone surrogate
scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
           | st.sampled_from([10**400, -10**30, 1e308, math.nan, math.inf, "nan", "1", "", "\n", "\ud800"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)
deep = st.integers(1, 3).map(lambda k: "[" * (400 * k) + "]" * (400 * k))
json_bytes = (json_values.map(lambda v: json.dumps(v).encode())
              | st.dictionaries(st.sampled_from(["caption", "synthetic_caption", "key", "x"]), json_values,
                                max_size=3).map(lambda v: json.dumps(v).encode())
              | deep.map(str.encode) | st.just(b'{"caption": "\\ud800 a lone surrogate"}')
              | st.just(b'{"caption": ' + b"1" * 5000 + b"}"))
caption_bytes = (st.binary(max_size=40) | st.text(max_size=40).map(str.encode)
                 | st.sampled_from([b"\xff\xfe", b"caf\xe9", b"  \t\n ", "\ufffd ok".encode(),
                                    b"a" * (MAX_CAPTION_CHARS + 1)]))

stems = st.lists(st.sampled_from(["a", "b", "0", ".", "/", "..", "./", "é", "☃", " ", ":", "#corrupt", "dir/"]),
                 max_size=5).map("".join)
exts = st.sampled_from(["jpg", "png", "txt", "json", "synthetic.txt", "", "JPG", "TXT", "txt.", ".txt", "a:b.txt",
                        "latent.safetensors", "tar", "é.txt"])
members = st.lists(st.tuples(st.tuples(stems, exts).map(".".join) | stems.filter(bool),
                             st.binary(max_size=24) | caption_bytes | json_bytes), max_size=8)
junk = st.binary(max_size=2048) | st.sampled_from([b"", bytes(1024), bytes(512) + b"x" * 600])
TAR_KINDS = ("duplicate tar member", "unreadable tar member", "corrupt tar", "no image member", "missing caption",
             "caption not UTF-8", "caption too long")


def _tar_bytes(items: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in items:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _check_sample(sample, named: set[str]) -> None:
    if sample.error:  # a bad row of a kind the manifest counts (text up to the first ':')
        one_line(sample.error)
        assert sample.error.startswith(TAR_KINDS) or any(sample.error.startswith(f"{n} caption ") for n in named), \
            sample.error
    else:  # a caption the text encoder and the parquet writer take
        assert sample.image is not None and isinstance(sample.caption, str) and utf8_text(sample.caption)
        assert sample.caption == sample.caption.strip() and 0 < len(sample.caption) <= MAX_CAPTION_CHARS


@fuzz(500)
@given(items=members, cut=st.none() | st.integers(0, 4096) | st.integers(0, 12_000),
       junk=st.integers(0, 3).flatmap(lambda i: st.none() if i else junk))  # 1 in 4: random bytes instead
@example(items=[("a.jpg", b"x"), ("a.txt", b"1"), ("b.jpg", b"y"), ("b.txt", b"2")], cut=3072, junk=None)  # at a header
@example(items=[("a.jpg", b"x"), ("a.txt", b"1"), ("b.jpg", b"y"), ("b.txt", b"2")], cut=2300, junk=None)  # in one
@example(items=[("a.jpg", b"x"), ("a.json", b'{"caption": "\\ud800"}')], cut=None, junk=None)
@example(items=[("a.jpg", b"x"), ("a.json", b"[" * 2000)], cut=None, junk=None)
@example(items=[], cut=None, junk=b"")
def test_tar_shards_are_read_or_counted(tmp_path, items, cut, junk):
    """Each member's sample is yielded once (usable, or a bad row of a known kind); a cut that loses a member's
    data (whole headers included: a cut at a header boundary, or inside one) is always counted; random bytes too."""
    whole = _tar_bytes(items if junk is None else [])
    raw = whole[:cut] if junk is None else junk
    (tmp_path / "shard.tar").write_bytes(raw)
    samples = list(iter_tar(str(tmp_path / "shard.tar")))
    by_key = {s.key: s for s in samples}
    assert len(by_key) == len(samples), [s.key for s in samples]
    with tarfile.open(fileobj=io.BytesIO(whole)) as tar:
        files = [(m, *split_member(m.name)) for m in tar if m.isfile()]
        data = {m.name: tar.extractfile(m).read() for m, _, _ in files}
    for sample in samples:
        _check_sample(sample, {ext[:-4] for _, _, ext in files if ext.endswith(".txt")})
    kept = [(m, key, ext) for m, key, ext in files if m.offset_data + m.size <= len(raw)]
    assert {key for _, key, _ in kept} <= set(by_key)
    event("a cut lost data" if len(kept) < len(files) else "nothing lost")
    if len(kept) < len(files):  # the cut lost (part of) a member: counted, never silent
        lost = {key for m, key, _ in files if m.offset_data + m.size > len(raw)}
        assert any(s.key.endswith("#corrupt") or (s.key in lost and s.error.startswith("unreadable tar member"))
                   for s in samples), (len(raw), len(whole), [(s.key, s.error) for s in samples])
    bad_text = {key for m, key, ext in kept if (ext == "txt" or ext.endswith(".txt"))
                and data[m.name].decode("utf-8", "replace").encode() != data[m.name]}  # not UTF-8
    dup = {key for i, (m, key, ext) in enumerate(kept) if (key, ext) in {(k, e) for _, k, e in kept[:i]}}
    assert all(by_key[key].error for key in bad_text | dup)  # bad rows, never replacement characters


@fuzz(500)
@given(txt=st.none() | caption_bytes, meta=st.none() | json_bytes, name=st.sampled_from(["", "synthetic"]))
@example(txt=None, meta=b'{"caption": "\\ud800"}', name="")
@example(txt=None, meta=b"[" * 5000, name="")
def test_captions_are_text_none_or_a_caption_error(txt, meta, name):
    parts = {k: v for k, v in ((f"{name}.txt" if name else "txt", txt), ("json", meta)) if v is not None}
    try:
        caption = caption_of(parts, name)
    except CaptionError as err:
        one_line(err, "caption")
        return
    if caption is not None:
        assert caption == caption.strip() and caption and len(caption) <= MAX_CAPTION_CHARS and utf8_text(caption)
        assert txt is None or caption == txt.decode("utf-8").strip()  # the member's exact text: nothing replaced


preset_keys = st.sampled_from([f.name for f in dataclasses.fields(SamplingSettings)] + ["about", "stepz", "a\nb", ""])
preset_values = (json_values | st.sampled_from(["euler", "ab2", 0.5, 3, 1, 0, -1, 2.5, True])
                 | st.dictionaries(st.sampled_from(["a", "b", "a\nb"]), scalars | st.floats(0, 1), max_size=3))
targets = st.dictionaries(st.sampled_from(["a", "b"]), st.none() | st.floats(0, 1), max_size=2)
valid_presets = st.fixed_dictionaries({}, optional={
    "rewards": targets, "negative_rewards": targets, "solver": st.sampled_from(["euler", "ab2", "heun"]),
    "steps": st.integers(1, 60), "guidance": st.floats(-5, 15), "shift": st.floats(0.1, 5), "about": json_values})
one_fuzzed = st.tuples(valid_presets, st.dictionaries(preset_keys, preset_values, max_size=1)).map(
    lambda t: t[0] | t[1])
presets = valid_presets | one_fuzzed | st.dictionaries(preset_keys, preset_values, max_size=5) | json_values


@fuzz(400)
@given(data=presets | st.binary(max_size=64) | deep.map(str.encode) | st.just(b"1" * 5000))
@example(data={"guidance": 10**400})
@example(data={"rewards": {"a\nb": 2.0}})
@example(data={"a\nb": 1})
@example(data=b"1" * 5000)
def test_preset_files_are_settings_or_one_line_errors(tmp_path, data):
    (tmp_path / "preset.json").write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    try:
        preset = load_preset(tmp_path / "preset.json")
    except ValueError as err:
        one_line(err, "preset.json")
        return
    settings_ = resolve(preset=preset)
    assert isinstance(settings_.steps, int) and math.isfinite(settings_.guidance)
    assert all(v is None or 0 <= v <= 1 for v in settings_.rewards.values())


_model = SimpleNamespace(reward_keys=["a", "b"], sampler_defaults={},
                         generator=SimpleNamespace(config=SimpleNamespace(image_channels=3, image_size=8)))
request_fields = st.fixed_dictionaries(
    {"mode": st.sampled_from(["generate", "sweep", "pareto", "ask_select", "draft_final", "ab", "x"]),
     "prompt": st.just("a red square")},
    optional={k: json_values | st.sampled_from(["a", "b", "m", "n", ["a", "b"], 3, 10**400]) for k in
              "model model_b points num_images pool sweep_key pareto_keys select_key steps guidance".split()})


@fuzz(400)
@given(preset=presets, rewards=json_values, fields=request_fields)
@example(preset={"rewards": 5}, rewards=None, fields={"mode": "generate", "prompt": "a"})
@example(preset=None, rewards=[[1]], fields={"mode": "generate", "prompt": "a"})
@example(preset=None, rewards=None, fields={"mode": "sweep", "prompt": "a", "points": 10**400})
@example(preset=None, rewards=None, fields={"mode": "generate", "prompt": "a", "model": ["m"]})
@example(preset=None, rewards=None, fields={"mode": "pareto", "prompt": "a", "pareto_keys": 5})
@example(preset="no-such-preset", rewards=None, fields={"mode": "generate", "prompt": "a"})
@example(preset=None, rewards=None, fields={"mode": "sweep", "prompt": "a", "sweep_key": "a", "points": None})
def test_studio_requests_are_calls_or_one_line_errors(preset, rewards, fields):
    """The studio's checks of what the page sends: its server answers a ValueError with a 400, the rest with a 500."""
    request = {**fields, "preset": preset, "rewards": rewards}
    try:
        calls = plan(request, {"m": _model, "n": _model}, limits := Limits())
    except ValueError as err:
        one_line(err)
        return
    assert calls and sum(c.kwargs["num_images"] for c in calls) <= limits.max_images
    assert all(set(c.kwargs["rewards"]) <= {"a", "b"} and c.kwargs["steps"] <= limits.max_steps for c in calls)


config_keys = st.sampled_from("train.steps train train.text_dropout train.parallel model.backbone.kind data optim.lr "
                              "model.backbone model.reward_keys model.image_size data.kind sampling sampling.steps "
                              "out_dir text_encoder.kind x.y train..steps model.backbone.kind.x loader.num_workers"
                              .split() + [""])
yaml_texts = st.text(max_size=8) | st.sampled_from(
    ["1", "-1", "abc", "[1, 2]", "{a: 1}", "null", "1e400", ".nan", ".inf", "true", "3.5", "'3'", "[", "{", "rin",
     "!!binary xx", "!!python/name:os.system", "unet", "10000000000000000000000", "0.5", "{kind: toy}", "a: b: c", ""])
plausible = st.sampled_from("train.steps=60 optim.lr=0.01 data.kind=jsonl data.path=x.jsonl seed=1 model.backbone=unet "
                            "sampling.steps=6 sampling={solver:ab2} train.seed=3 train.text_dropout=0.2 out_dir=r "
                            "model.image_size=16 text_encoder.dim=32 model.reward_keys=[brightness] "
                            "loader.num_workers=1 train.precision=bf16".split())
overrides = st.one_of(*[plausible] * 4, st.tuples(config_keys, yaml_texts).map("=".join), st.text(max_size=12))


def _check_types(obj, where: str = "") -> None:
    """Every scalar field of a (nested) config has its declared type: a string for an int would fail later."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, tp, base = getattr(obj, f.name), hints[f.name], _unwrap_optional(hints[f.name])
        if dataclasses.is_dataclass(value):
            _check_types(value, f"{where}{f.name}.")
        elif value is None:
            assert type(None) in typing.get_args(tp) or f.default is None, f"{where}{f.name} is None"
        elif base in (int, float, str, bool):
            assert isinstance(value, base) and (base is bool or not isinstance(value, bool)), \
                f"{where}{f.name}={value!r} is not a {base.__name__}"
            assert base is not float or math.isfinite(value), f"{where}{f.name}={value!r}"
        elif typing.get_origin(base) is list:
            assert isinstance(value, list), f"{where}{f.name}={value!r} is not a list"


@fuzz(400)
@given(items=st.lists(plausible, max_size=3) | st.lists(overrides, max_size=3))
@example(items=["train.steps=abc"])
@example(items=["model.image_size=[1]"])
@example(items=["model.reward_keys=abc"])
@example(items=["optim.lr=.nan"])
@example(items=["optim.lr=1" + "0" * 400])
@example(items=["model.backbone.kind.x=1"])
def test_overrides_make_a_config_or_a_one_line_error(items):
    try:
        cfg = load_run_config("cpu_tiny", items)
    except ValueError as err:  # ConfigError is a ValueError
        one_line(err)
        return
    _check_types(cfg)


section_keys = st.sampled_from("model train data optim sampling out_dir kind steps lr backbone reward_keys image_size "
                               "num_samples batch_size".split())
yaml_maps = st.recursive(scalars.filter(lambda v: not (isinstance(v, str) and "\ud800" in v)),
                         lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(section_keys | st.integers(0, 3) | st.none(), inner, max_size=3),
                         max_leaves=10)
_tiny = yaml.safe_load((BUILTIN_CONFIGS / "cpu_tiny.yaml").read_text())


def _leaves(data: dict, prefix=()) -> list[tuple]:
    return [p for k, v in data.items()
            for p in [prefix + (k,), *(_leaves(v, prefix + (k,)) if isinstance(v, dict) else [])]]


def _mutated(edits: list[tuple[tuple, object]]) -> dict:
    """cpu_tiny.yaml with some of its keys (or a new key beside one) set to other values."""
    data = json.loads(json.dumps(_tiny))
    for path, value in edits:
        node = data
        for part in path[:-1]:
            node[part] = node[part] if isinstance(node.get(part), dict) else {}
            node = node[part]
        node[path[-1]] = value
    return data


leaves = st.sampled_from(_leaves(_tiny))
paths = leaves | st.tuples(leaves, section_keys).map(lambda t: t[0][:-1] + (t[1],))
small_values = st.sampled_from([0, 1, 2, 64, 0.5, -1, "rin", "unet", "toy", [], ["x"], {}, None, True, "1", 1e9])


@fuzz(400)
@given(data=st.lists(st.tuples(leaves, small_values), min_size=1, max_size=2).map(_mutated)  # cpu_tiny, edited
       | st.lists(st.tuples(paths, small_values | yaml_maps), min_size=1, max_size=3).map(_mutated)
       | st.dictionaries(section_keys | st.integers(0, 3), yaml_maps, max_size=4) | yaml_maps)
@example(data={1: "a", "train": {}})
@example(data={"train": {"steps": "abc"}})
@example(data={"model": None, "train": 3})
def test_yaml_configs_make_a_config_or_a_one_line_error(tmp_path, data):
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(data))
    try:
        cfg = load_run_config(str(tmp_path / "run.yaml"))
    except ValueError as err:
        one_line(err)
        return
    _check_types(cfg)


target_keys = st.sampled_from(["a", "b", "c", "d", "é", " a", "a\nb"])
good_targets = st.tuples(target_keys, st.floats(0, 1).map(str) | st.sampled_from(["1", "0", "nan", "NaN", "none"]))
bad_targets = st.tuples(target_keys | st.just(""), st.text(max_size=5) | st.sampled_from(
    ["-nan", "inf", "1e400", "1.5", "-0.1", "1_0", " 0.5 ", "", "=", "0.5=1", "０.５"]))
target_items = st.one_of(*[good_targets.map("=".join)] * 4, bad_targets.map("=".join), st.text(max_size=8))


@fuzz(500)
@given(items=st.lists(good_targets.map("=".join), max_size=3, unique_by=lambda s: s.partition("=")[0])
       | st.lists(target_items, max_size=3))
@example(items=["a\nb=2"])
@example(items=["a=0.2", "a=0.9"])
def test_reward_flags_are_targets_or_one_line_errors(items):
    try:
        settings_ = resolve({"rewards": parse_key_values(items, "--reward")})
    except ValueError as err:
        one_line(err)
        return
    assert all(v is None or (0 <= v <= 1 and math.isfinite(v)) for v in settings_.rewards.values())
    assert sorted(settings_.rewards) == sorted(item.partition("=")[0] for item in items)  # none dropped


good_records = st.fixed_dictionaries(
    {"image": st.just("img.png"), "caption": st.text(min_size=1, max_size=20)},
    optional={"scores": st.dictionaries(st.text(max_size=5), st.none() | st.floats(0, 1), max_size=3),
              "synthetic_caption": st.text(max_size=10)})
_odd = ['"scores": {"a": 1' + "0" * 400 + "}", '"scores": {"a": ' + "1" * 5000 + "}", '"scores": {"a": NaN}',
        '"caption": "\\ud800"', '"synthetic_caption": "\\udfff"', '"image": "a\\nb.png"', '"image": "a\\u0000b"',
        '"caption": [1]', '"image": 3', '"caption": "raw \udcff, not UTF-8"', '"image": "none.png"', '"image": null']
bad_lines = (json_values.map(json.dumps) | st.text(max_size=30) | st.just("[" * 5000)
             | st.fixed_dictionaries({"image": st.just("img.png"), "caption": scalars, "scores": json_values})
             .map(json.dumps)
             | st.sampled_from(_odd).map(lambda odd: '{"image": "img.png", "caption": "x", ' + odd + "}"))
jsonl_lines = st.lists(st.tuples(st.booleans(), good_records, bad_lines, st.booleans()), min_size=1, max_size=6)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jsonl")
    Image.new("RGB", (4, 4), (10, 20, 30)).save(folder / "img.png")
    return folder


@pytest.mark.filterwarnings("ignore:data.jsonl")  # skipped lines are also reported in a warning
@fuzz(300)
@given(lines=jsonl_lines)
@example(lines=[(True, {"image": "img.png", "caption": "a\u2028b"}, "", False)])
@example(lines=[(False, {}, '{"image": "img.png", "caption": "x", "scores": {"a": ' + "1" * 5000 + "}}", True)])
def test_training_jsonl_lines_are_kept_or_counted(image_folder, lines):
    text = "\n".join(json.dumps(good, ensure_ascii=ascii_) if is_good else bad for is_good, good, bad, ascii_ in lines)
    path = image_folder / "data.jsonl"
    path.write_bytes(text.encode("utf-8", "surrogatepass") + b"\n")  # (a raw surrogate: not UTF-8)
    records = [r for r in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if r.strip()]  # as text mode
    good = [g for is_good, g, _, _ in lines if is_good]
    try:
        ds = JsonlImageDataset(path, image_size=4)
    except DataError as err:
        message = one_line(err, "data.jsonl")
        assert not good or ("not UTF-8" in message and not utf8_text(text))
        return
    event(f"{len(ds)} kept, {len(ds.skipped)} skipped")
    assert len(ds) + len(ds.skipped) == len(records)
    kept = iter(ds.captions)  # every valid line is kept, in order (other lines may be valid too)
    assert all(any(c == g["caption"] for c in kept) for g in good), (good, ds.captions, ds.skipped)
    for reason in ds.skipped:
        one_line(reason, "data.jsonl:")
    for caption, scores in zip(ds.captions, ds.scores):
        assert utf8_text(caption) and all(math.isnan(v) or 0 <= v <= 1 for v in scores.values())


@fuzz(200)
@given(lines=jsonl_lines, key=st.none() | scalars)
@example(lines=[(False, {}, "[1]", False)], key=None)
@example(lines=[(False, {}, "[" * 5000, False)], key=None)
@example(lines=[(False, {}, '{"image": "img.png", "caption": "\\ud800"}', False)], key=None)
def test_scoring_jsonl_rows_are_samples_or_bad_rows(image_folder, lines, key):
    """The JSONL input of `mirokit score` / `recaption`: each line a sample or a bad row, never an exception."""
    text = "\n".join(json.dumps({**good, **({} if key is None else {"key": key})}, ensure_ascii=ascii_) if is_good
                     else bad for is_good, good, bad, ascii_ in lines)
    path = image_folder / "score.jsonl"
    path.write_bytes(text.encode("utf-8", "surrogatepass") + b"\n")  # (raw surrogates: not UTF-8)
    samples = list(InputUnit("jsonl", str(path), "score", 0, -1).samples())
    assert len(samples) == len([r for r in text.split("\n") if r.strip()])
    for sample in samples:  # keys and captions the parquet writer takes
        assert isinstance(sample.key, str) and utf8_text(sample.key)
        assert sample.caption is None or (isinstance(sample.caption, str) and utf8_text(sample.caption))
        assert all(isinstance(v, str) and utf8_text(v) for v in sample.extras.values())
        if sample.error:
            one_line(sample.error)
        else:
            assert sample.image and sample.caption.strip() and len(sample.caption) <= MAX_CAPTION_CHARS
