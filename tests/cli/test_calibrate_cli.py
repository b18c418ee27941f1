import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mirokit.cli.main import main


@pytest.fixture
def scores(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "scores"
    folder.mkdir()
    for i in range(3):  # three files, as `mirokit score` writes one per shard
        a = rng.normal(size=1000).astype(np.float32)
        a[:10] = np.nan
        pq.write_table(pa.table({"key": [f"{i}-{j}" for j in range(1000)], "caption": ["c"] * 1000,
                                 "aesthetic_score": a, "clip_score": rng.uniform(size=1000).astype(np.float32),
                                 "nan_only": np.full(1000, np.nan, np.float32), "error": [""] * 1000}),
                       folder / f"shard-{i}.parquet")
    return folder


def test_fit_streams_files_and_apply_maps_to_the_grid(scores, tmp_path, capsys):
    cal = tmp_path / "cal.json"
    assert main(["calibrate", "fit", str(scores), "--reward", "aesthetic_score", "--reward", "clip_score",
                 "--out", str(cal)]) == 0
    data = json.loads(cal.read_text())
    a = data["rewards"]["aesthetic_score"]
    assert a["count"] == 3000 and a["missing"] == 30 and len(a["edges"]) == 63
    assert -0.2 < a["mean"] < 0.2 and 0.9 < a["std"] < 1.1
    assert main(["calibrate", "apply", str(scores), "--calibration", str(cal), "--reward", "aesthetic_score",
                 "--reward", "clip_score", "--out", str(tmp_path / "out")]) == 0
    table = pq.read_table(tmp_path / "out" / "shard-0.parquet").to_pydict()
    values = np.asarray(table["aesthetic_score"], dtype=float)
    assert np.isnan(values[:10]).all()
    finite = values[10:]
    assert np.allclose(finite * 63, np.round(finite * 63), atol=1e-4) and finite.min() >= 0 and finite.max() <= 1
    assert table["key"][:2] == ["0-0", "0-1"]  # other columns untouched


@pytest.mark.parametrize("args,expected", [
    (["--reward", "nosuch"], "unknown reward key 'nosuch'"),
    (["--reward", "nan_only"], "all 3000 scores are missing"),
])
def test_bad_columns_are_one_line(scores, tmp_path, capsys, args, expected):
    assert main(["calibrate", "fit", str(scores), *args, "--out", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


def test_empty_column_is_one_line(tmp_path, capsys):
    pq.write_table(pa.table({"key": pa.array([], pa.string()), "q": pa.array([], pa.float32())}),
                   tmp_path / "e.parquet")
    assert main(["calibrate", "fit", str(tmp_path / "e.parquet"), "--reward", "q",
                 "--out", str(tmp_path / "c.json")]) == 2
    assert "no scores" in capsys.readouterr().err
