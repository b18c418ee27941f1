"""The studio's server through its HTTP API (Starlette's TestClient), on tiny real models and the world's real
reward scorers: every mode, identical noise, same pixels as `mirokit sample`, cancel, limits, clients apart."""

import io
import json
import shlex
import time
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("starlette", reason="the studio's extra is not installed: pip install 'mirokit[studio]'")
pytest.importorskip("httpx", reason="httpx (Starlette's test client) is not installed")

from starlette.testclient import TestClient
from studio_kit import KEYS, make_studio, tiny_models

A, B = {"X-Studio-Client": "client-aaaa"}, {"X-Studio-Client": "client-bbbb"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tiny_models(tmp_path_factory.mktemp("studio_models"))


@pytest.fixture(scope="module")
def studio(models, tmp_path_factory):
    from mirokit.studio.requests import Limits

    return make_studio(models, tmp_path_factory.mktemp("studio_out"), limits=Limits(max_images=16, max_steps=100),
                       max_queued_per_client=3)


@pytest.fixture(scope="module")
def client(studio):
    from mirokit.studio.server import build_app

    with TestClient(build_app(studio)) as c:
        yield c


def run(client, request, headers=A, timeout=120.0) -> dict:
    """Submit `request` and poll until the job finishes; returns its last status."""
    response = client.post("/api/jobs", json=request, headers=headers)
    assert response.status_code == 200, response.text
    job = response.json()
    deadline = time.time() + timeout
    while job["status"] in ("queued", "running"):
        assert time.time() < deadline, job
        time.sleep(0.05)
        job = client.get(f"/api/jobs/{job['id']}", headers=headers).json()
    return job


def pixels(client, job, result, headers=A) -> np.ndarray:
    response = client.get(f"/api/images/{job['id']}/{result['file']}", headers=headers)
    assert response.status_code == 200
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


BASE = {"model": "miro", "prompt": "a photo of a red circle", "steps": 4, "solver": "euler", "seed": 3}


def test_the_page_and_info(client):
    page = client.get("/")
    assert page.status_code == 200 and "studio.js" in page.text
    assert client.get("/static/studio.js").status_code == 200 and client.get("/static/nope.js").status_code == 404
    info = client.get("/api/info").json()
    miro = next(m for m in info["models"] if m["name"] == "miro")
    assert miro["reward_keys"] == KEYS and miro["measured_keys"] == KEYS
    for key in KEYS:  # one meaning per target of the 1/63 grid, raw ranges ascending
        meanings = miro["meanings"][key]
        assert len(meanings) == 64 and all(m["raw_low"] <= m["raw_high"] for m in meanings)
        assert meanings[0]["percentile_low"] == 0 and meanings[-1]["percentile_high"] == 100
    assert miro["defaults"]["solver"] == "ab2" and miro["defaults"]["steps"] == 3  # stored with the model
    assert {"official", "fast"} <= set(info["presets"]) and "dpm++2m" in info["solvers"]


def test_generate_measures_stores_and_reproduces_with_the_cli(client, tmp_path):
    from mirokit.cli.main import main
    from mirokit.studio.history import settings_from_png

    job = run(client, {**BASE, "num_images": 2, "rewards": {"world_quality": 0.25}, "guidance_interval": [0.2, 1]})
    assert job["status"] == "done" and len(job["results"]) == 2
    first = job["results"][0]
    assert first["asked"] == {"world_alignment": 1.0, "world_quality": 0.25, "world_composition": 1.0}
    assert set(first["scores"]) == set(KEYS)  # measured by the real world scorers
    assert all(0.0 <= s["value"] <= 1.0 for s in first["scores"].values())
    assert first["asked_meaning"]["world_quality"]["bin"] == round(0.25 * 63)
    # the PNG carries its settings
    png = client.get(f"/api/images/{job['id']}/{job['results'][1]['file']}", headers=A).content
    carried = settings_from_png(png)
    assert carried["settings"]["seed"] == 3 and carried["image"] == 1 and carried["prompt"] == BASE["prompt"]
    restored = client.post("/api/settings-from-png", content=png).json()
    assert restored["settings"]["rewards"] == {"world_quality": 0.25}
    # "copy as CLI" gives the same pixels
    second = job["results"][1]
    args = shlex.split(second["cli"])[1:]
    args[args.index("--out") + 1] = str(tmp_path / "cli")
    assert main(args) == 0
    cli_image = np.asarray(Image.open(tmp_path / "cli" / "000_001.png").convert("RGB"))
    np.testing.assert_array_equal(cli_image, pixels(client, job, second))
    assert "MiroPipeline.from_pretrained" in second["python"] and "num_images=2" in second["python"]
    assert "--guidance-interval" in args and "guidance_interval=(0.2, 1.0)" in second["python"]  # every setting


def test_other_targets_give_other_images_on_the_same_noise(client):
    high = run(client, {**BASE, "rewards": {"world_quality": 1.0}})
    low = run(client, {**BASE, "rewards": {"world_quality": 0.0}})
    again = run(client, {**BASE, "rewards": {"world_quality": 1.0}})
    assert high["results"][0]["settings"]["seed"] == low["results"][0]["settings"]["seed"]
    assert not np.array_equal(pixels(client, high, high["results"][0]), pixels(client, low, low["results"][0]))
    np.testing.assert_array_equal(pixels(client, high, high["results"][0]), pixels(client, again, again["results"][0]))


def test_sweep_strip(client):
    job = run(client, {**BASE, "mode": "sweep", "sweep_key": "world_quality", "points": 5})
    targets = [r["meta"]["target"] for r in job["results"]]
    assert targets == [round(t * 63) / 63 for t in (0, 0.25, 0.5, 0.75, 1.0)]
    assert [r["asked"]["world_quality"] for r in job["results"]] == targets
    assert {r["settings"]["seed"] for r in job["results"]} == {3} and {r["image"] for r in job["results"]} == {0}
    summary = job["summary"]
    assert summary["key"] == "world_quality" and summary["measured"] == 5
    from scipy.stats import spearmanr

    measured = [r["scores"]["world_quality"]["raw"] for r in job["results"]]
    if len(set(measured)) < 2:  # a random model may not move the reward: Spearman is undefined then
        assert summary["spearman"] is None
    else:
        assert summary["spearman"] == pytest.approx(spearmanr(targets, measured).statistic)


def test_pareto_grid_front_is_not_dominated(client):
    job = run(client, {**BASE, "mode": "pareto", "pareto_keys": ["world_quality", "world_composition"], "points": 3})
    assert len(job["results"]) == 9
    a, b = "world_quality", "world_composition"
    points = {r["index"]: (r["scores"][a]["raw"], r["scores"][b]["raw"]) for r in job["results"]}
    front = job["summary"]["front"]
    assert front
    for i in front:
        x, y = points[i]
        assert not any(x2 >= x and y2 >= y and (x2, y2) != (x, y) for x2, y2 in points.values())
    for j in set(points) - set(front):
        x, y = points[j]
        assert any(x2 >= x and y2 >= y and (x2, y2) != (x, y) for x2, y2 in points.values())


def test_ask_vs_select(client):
    job = run(client, {**BASE, "mode": "ask_select", "select_key": "world_quality", "pool": 4})
    ask = [r for r in job["results"] if r["meta"]["role"] == "ask"]
    pool = [r for r in job["results"] if r["meta"]["role"] == "pool"]
    assert len(ask) == 1 and len(pool) == 4 and ask[0]["asked"]["world_quality"] == 1.0
    assert all(r["asked"]["world_quality"] is None for r in pool)  # the pool is drawn without asking
    best = max(pool, key=lambda r: r["scores"]["world_quality"]["raw"])
    assert [r["meta"]["selected"] for r in pool] == [r is best for r in pool]
    s = job["summary"]
    assert s["select"]["index"] == best["index"] and s["select"]["evaluations"] == 4 * s["ask"]["evaluations"]
    np.testing.assert_array_equal(pixels(client, job, ask[0]).shape, pixels(client, job, pool[0]).shape)


def test_draft_then_final_and_model_ab(client):
    job = run(client, {**BASE, "mode": "draft_final", "guidance": 2.0})
    draft, final = job["results"]
    assert (draft["settings"]["solver"], draft["settings"]["steps"]) == ("ab2", 6)
    assert (final["settings"]["solver"], final["settings"]["steps"]) == ("euler", 50)
    assert draft["settings"]["guidance"] == final["settings"]["guidance"] == 2.0  # only the sampler changes
    ab = run(client, {**BASE, "mode": "ab", "model_b": "baseline", "rewards": {"world_quality": 0.5}})
    a, b = ab["results"]
    assert (a["model"], b["model"]) == ("miro", "baseline") and b["settings"]["rewards"] == {}
    bad = client.post("/api/jobs", json={**BASE, "mode": "ab", "model_b": "miro"}, headers=A)
    assert bad.status_code == 400 and "model_b" in bad.json()["error"]


@pytest.mark.parametrize("change, message", [
    ({"steps": 0}, "steps must be an integer >= 1"),
    ({"steps": 500}, "steps must be at most 100"),
    ({"rewards": {"clip_score": 1.0}}, "the model has no reward clip_score"),
    ({"preset": {"rewards": {"hpsv2_score": 0.5}}}, "the preset names reward(s) the model lacks: hpsv2_score"),
    ({"num_images": 17}, "num_images must be between 1 and 16"),
    ({"prompt": "  "}, "write a prompt first"),
    ({"mode": "dance"}, "unknown mode"),
    ({"solver": "rk45"}, "unknown solver"),
    ({"guidance_interval": [0.8, 0.2]}, "guidance_interval must have 0 <= lo < hi <= 1"),
])
def test_bad_values_are_one_line_errors(client, change, message):
    response = client.post("/api/jobs", json={**BASE, **change}, headers=A)
    assert response.status_code == 400
    error = response.json()["error"]
    assert message in error and "\n" not in error


def test_clients_never_see_each_others_jobs(client):
    job = run(client, BASE, headers=A)
    assert client.get(f"/api/jobs/{job['id']}", headers=B).status_code == 404
    assert client.get(f"/api/images/{job['id']}/{job['results'][0]['file']}", headers=B).status_code == 404
    assert client.delete(f"/api/jobs/{job['id']}", headers=B).status_code == 404
    assert client.get("/api/info", headers={}).status_code == 200
    assert client.post("/api/jobs", json=BASE).status_code == 400  # no client id
    mine = {j["id"] for j in client.get("/api/history", headers=A).json()["jobs"]}
    theirs = {j["id"] for j in client.get("/api/history", headers=B).json()["jobs"]}
    assert job["id"] in mine and job["id"] not in theirs


def test_cancel_queued_and_running_jobs(client, studio):
    slow = {**BASE, "steps": 100, "num_images": 16}
    first = client.post("/api/jobs", json=slow, headers=B).json()
    second = client.post("/api/jobs", json=slow, headers=B).json()
    third = client.post("/api/jobs", json=slow, headers=B).json()
    refused = client.post("/api/jobs", json=slow, headers=B)
    assert refused.status_code == 429 and "limit 3" in refused.json()["error"]
    assert client.get(f"/api/jobs/{third['id']}", headers=B).json()["position"] == 2
    cancelled = client.delete(f"/api/jobs/{second['id']}", headers=B).json()
    assert cancelled["status"] == "cancelled" and cancelled["results"] == []
    deadline = time.time() + 60
    while client.get(f"/api/jobs/{first['id']}", headers=B).json()["status"] == "queued":
        assert time.time() < deadline
        time.sleep(0.02)
    for job in (first, third):
        client.delete(f"/api/jobs/{job['id']}", headers=B)
    for job in (first, third):
        while (status := client.get(f"/api/jobs/{job['id']}", headers=B).json())["status"] in ("queued", "running"):
            assert time.time() < deadline
            time.sleep(0.02)
        assert status["status"] == "cancelled"
        assert status["step"] < status["total"]  # stopped before the end
        assert not studio.history.folder(job["id"]).exists()  # no partial images left


def test_history_star_and_export(client):
    job = run(client, {**BASE, "num_images": 2})
    starred = client.post(f"/api/history/{job['id']}/star", json={"index": 1}, headers=A).json()
    assert starred == {"starred": [1]}
    assert client.post(f"/api/history/{job['id']}/star", json={"index": 1}, headers=B).status_code == 404
    archive = zipfile.ZipFile(io.BytesIO(client.get("/api/history/export.zip?starred=1", headers=A).content))
    names = [n for n in archive.namelist() if n.startswith(job["id"])]
    assert sorted(names) == [f"{job['id']}/001.png", f"{job['id']}/job.json"]
    record = json.loads(archive.read(f"{job['id']}/job.json"))
    assert record["starred"] == [1] and len(record["results"]) == 2
    not_ours = client.post("/api/settings-from-png", content=_plain_png())
    assert not_ours.status_code == 400 and "carries no mirokit settings" in not_ours.json()["error"]
    assert client.post("/api/settings-from-png", content=b"not an image").status_code == 400


def _plain_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_failing_call_shows_one_line_and_the_queue_goes_on():
    from mirokit.studio.jobs import Call, JobQueue

    def runner(job, call, on_step):
        if call.label == "bad":
            raise RuntimeError("the model ran out of memory\n(traceback lines)")
        return [{"ok": call.label}]

    queue = JobQueue(runner, preview=None)
    bad = queue.submit("client-x", "generate", {}, [Call("m", {}, "bad")])
    good = queue.submit("client-x", "generate", {}, [Call("m", {}, "good")])
    deadline = time.time() + 10
    while not queue.idle():
        assert time.time() < deadline
        time.sleep(0.01)
    assert (bad.status, bad.error) == ("failed", "the model ran out of memory")
    assert (good.status, good.results) == ("done", [{"ok": "good"}])
    queue.close()


def test_the_cli_builds_a_studio_of_variants(tmp_path, capsys):
    from studio_kit import save_tiny_model

    from mirokit.cli.main import build_parser, main
    from mirokit.cli.studio import build_studio
    from mirokit.sampling import SamplingSettings

    repo = tmp_path / "repo"
    save_tiny_model(repo / "v1", KEYS)
    save_tiny_model(repo / "v2", KEYS[:2], seed=2)
    args = build_parser().parse_args(["studio", str(repo), "--variant", "v1", "--variant", "v2", "--dtype", "bf16",
                                      "--out", str(tmp_path / "out")])
    studio = build_studio(args)
    assert list(studio.models) == ["v1", "v2"] and studio.models["v2"].reward_keys == KEYS[:2]
    cli, python = studio._as_code("v2", "a red circle", SamplingSettings(), 0)
    assert f"--model {repo} --variant v2" in cli and "variant='v2'" in python
    assert "--dtype bf16" in cli and ".to(dtype=torch.bfloat16)" in python  # the studio samples in bf16
    assert next(studio.models["v1"].generator.parameters()).dtype == torch.bfloat16
    assert main(["studio", str(repo), "--max-images", "0"]) == 2
    assert "--max-images must be >= 1" in capsys.readouterr().err
    assert main(["studio", "a=x", "b=y", "--variant", "v1", "--variant", "v2"]) == 2
    assert "need exactly one MODEL" in capsys.readouterr().err
