"""MiroPipeline.push_to_hub and `mirokit export --push-to-hub` against a small hub on 127.0.0.1 (the real hub is
not reachable here): huggingface_hub's own HfApi creates the repo, asks the preupload endpoint, sends the NDJSON
commit; the server keeps what it is sent. Everything up to and including the upload requests is real; what the
real hub does after (storage, LFS/xet for large files) is not tested."""

import base64
import json
import re
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import yaml
from huggingface_hub import constants

from mirokit.cli.main import main
from mirokit.pipeline import MiroPipeline

sys.path.insert(0, str(Path(__file__).parent / "train"))
from runs import tiny_run

TOKEN = "hf_local_test_token"


class LocalHub(BaseHTTPRequestHandler):
    """The hub endpoints create_repo, model_info, validate-yaml, preupload and commit need; `hub` (the server)
    holds `requests` [(method, path, headers, body)], `repos` {repo id: {"private": bool, "files": {path: bytes}}},
    `commits` [(repo id, header, paths)] and `token` (set: any other token is refused)."""

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 404:
            self.send_header("X-Error-Code", "RepoNotFound")
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        hub = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0]
        if path == "/api/agent-harnesses":  # huggingface_hub's best-effort telemetry: not part of the upload
            return self._answer(404, {"error": "not here"})
        hub.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if hub.token is not None and self.headers.get("Authorization") != f"Bearer {hub.token}":
            return self._answer(401, {"error": "Invalid credentials in Authorization header"})
        base = f"http://127.0.0.1:{hub.server_port}"
        if (self.command, path) == ("POST", "/api/repos/create"):
            payload = json.loads(body)
            repo = f"{payload['organization']}/{payload['name']}"
            if repo in hub.repos:
                return self._answer(409, {"error": "You already created this model repo", "url": f"{base}/{repo}"})
            hub.repos[repo] = {"private": payload.get("visibility") == "private", "files": {}}
            return self._answer(200, {"url": f"{base}/{repo}", "name": repo})
        if (self.command, path) == ("POST", "/api/validate-yaml"):
            return self._answer(200, {"errors": [], "warnings": []})
        info = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/[^/]+)?", path)
        if self.command == "GET" and info and info.group(1) in hub.repos:
            files = hub.repos[info.group(1)]["files"]
            front = re.match(r"---\n(.*?)\n---", files.get("README.md", b"").decode(), re.S)
            return self._answer(200, {"id": info.group(1), "sha": "0" * 40,
                                      "siblings": [{"rfilename": name} for name in files],
                                      "cardData": yaml.safe_load(front.group(1)) if front else None})
        upload = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(preupload|commit)/([^/]+)", path)
        if self.command == "POST" and upload and upload.group(1) in hub.repos:
            if upload.group(2) == "preupload":
                return self._answer(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                    for f in json.loads(body)["files"]]})
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            for line in lines[1:]:
                assert line["key"] == "file" and line["value"]["encoding"] == "base64"
                hub.repos[upload.group(1)]["files"][line["value"]["path"]] = base64.b64decode(line["value"]["content"])
            hub.commits.append((upload.group(1), lines[0]["value"], [line["value"]["path"] for line in lines[1:]]))
            oid = f"{len(hub.commits):040x}"
            return self._answer(200, {"commitUrl": f"{base}/{upload.group(1)}/commit/{oid}", "commitOid": oid,
                                      "pullRequestUrl": None})
        return self._answer(404, {"error": f"no route {self.command} {path} in the local hub"})

    do_GET = do_POST = _handle


@pytest.fixture
def hub(monkeypatch):
    """A local hub on 127.0.0.1 that huggingface_hub talks to (HF_ENDPOINT's constant; offline mode off)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), LocalHub)
    server.requests, server.repos, server.commits, server.token = [], {}, [], None
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real 2-step training run (its checkpoint is what `mirokit export` reads)."""
    from mirokit.train.loop import train

    out = tmp_path_factory.mktemp("run")
    train(tiny_run(out, "model.reward_keys=[brightness,size]", "train.batch_size=8", "train.steps=2",
                   "optim.warmup_steps=1", "train.precision=fp32"))
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_push_to_hub_uploads_the_saved_folder_with_its_card(hub, run, tmp_path):
    pipe = MiroPipeline.from_pretrained(run / "model")
    info = pipe.push_to_hub("someone/tiny-miro", private=True, token=TOKEN, commit_message="first upload")
    assert info.commit_url == f"{constants.ENDPOINT}/someone/tiny-miro/commit/{1:040x}" and info.pr_url is None
    assert hub.repos["someone/tiny-miro"]["private"] is True
    assert [(m, p.split("?")[0]) for m, p, _, _ in hub.requests] == [
        ("POST", "/api/repos/create"), ("GET", "/api/models/someone/tiny-miro"), ("POST", "/api/validate-yaml"),
        ("POST", "/api/models/someone/tiny-miro/preupload/main"), ("POST", "/api/models/someone/tiny-miro/commit/main")]
    assert all(h.get("authorization") == f"Bearer {TOKEN}" for _, _, h, _ in hub.requests)
    repo, header, paths = hub.commits[0]
    assert header["summary"] == "first upload"
    uploaded = hub.repos[repo]["files"]
    pipe.save_pretrained(tmp_path / "local")  # what save_pretrained writes, byte for byte, but the card
    local = _files(tmp_path / "local")
    assert sorted(paths) == sorted(local) == ["README.md", "config.json", "model.safetensors", "pipeline.json",
                                              "text_encoder/config.json", "text_encoder/model.safetensors"]
    assert all(uploaded[name] == local[name] for name in local if name != "README.md")
    card = uploaded["README.md"].decode()
    assert card.startswith("---\nlibrary_name: mirokit\n") and "\n# tiny-miro\n" in card
    assert 'MiroPipeline.from_pretrained("someone/tiny-miro")' in card
    # what went up loads and samples like the original
    copy = tmp_path / "downloaded"
    for name, data in uploaded.items():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(data)
    a = pipe("a red circle", steps=2, seed=3).images[0]
    b = MiroPipeline.from_pretrained(copy)("a red circle", steps=2, seed=3).images[0]
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_a_hub_readme_mirokit_did_not_write_is_kept(hub, run):
    hub.repos["someone/kept"] = {"private": False, "files": {"README.md": b"---\nlicense: mit\n---\n# Mine\n"}}
    pipe = MiroPipeline.from_pretrained(run / "model")
    with pytest.warns(UserWarning, match="someone/kept has a README.md that mirokit did not write: kept"):
        pipe.push_to_hub("someone/kept")
    assert "README.md" not in hub.commits[-1][2] and "model.safetensors" in hub.commits[-1][2]
    assert hub.repos["someone/kept"]["files"]["README.md"] == b"---\nlicense: mit\n---\n# Mine\n"
    pipe.push_to_hub("someone/mine")
    pipe.push_to_hub("someone/mine", license="mit")  # the second time the hub's card is mirokit's: replaced
    assert "README.md" in hub.commits[-1][2]
    assert b"license: mit" in hub.repos["someone/mine"]["files"]["README.md"]


def test_export_push_to_hub(hub, run, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", str(run), "--out", str(out), "--push-to-hub", "someone/exported", "--private",
                 "--token", TOKEN, "--license", "apache-2.0"]) == 0
    printed = capsys.readouterr().out
    assert f"pushed {out} to someone/exported: {constants.ENDPOINT}/someone/exported/commit/" in printed
    uploaded = hub.repos["someone/exported"]["files"]
    assert uploaded == {k: v for k, v in _files(out).items()}  # the export folder as it is, card included
    card = uploaded["README.md"]
    assert b"license: apache-2.0" in card and b'from_pretrained("someone/exported")' in card
    assert hub.repos["someone/exported"]["private"] and "train_state" not in " ".join(uploaded)


def test_export_writes_a_card_without_pushing(run, tmp_path):
    assert main(["export", str(run), "--out", str(tmp_path / "m"), "--license", "mit"]) == 0
    card = (tmp_path / "m" / "README.md").read_text()
    assert "license: mit" in card and 'from_pretrained("path/to/m")' in card


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_hub_is_one_line_naming_the_repo(run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    out = tmp_path / "m"
    assert main(["export", str(run), "--out", str(out), "--push-to-hub", "someone/unreachable"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mirokit export: error: pushing {out} to the hub repo someone/unreachable failed: ")
    assert "\n" not in err and "Traceback" not in err
    assert 'from_pretrained("someone/unreachable")' in (out / "README.md").read_text()  # all but the upload done


def test_a_refused_token_is_one_line_naming_the_repo(hub, run):
    hub.token = TOKEN
    with pytest.raises(RuntimeError, match=r"^pushing the model to the hub repo someone/x failed: Client error "
                       r"'401 Unauthorized' for url "
                       r"'http://127.0.0.1:\d+/api/repos/create' Invalid credentials in Authorization header$") as err:
        MiroPipeline.from_pretrained(run / "model").push_to_hub("someone/x", token="hf_wrong")
    assert "\n" not in str(err.value) and not hub.repos and "hf_wrong" not in str(err.value)


def test_offline_mode_is_one_line(run):
    constants_offline = constants.HF_HUB_OFFLINE
    assert constants_offline  # tests/conftest.py sets HF_HUB_OFFLINE=1
    with pytest.raises(RuntimeError, match=r"the hub repo someone/x failed: .*offline mode") as err:
        MiroPipeline.from_pretrained(run / "model").push_to_hub("someone/x")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("argv, says", [
    (["--push-to-hub", "not-a-repo"], "a hub repo id must be OWNER/NAME"),
    (["--private"], "--private and --token go with --push-to-hub")])
def test_bad_export_flags_are_one_line_before_anything_is_written(run, tmp_path, capsys, argv, says):
    assert main(["export", str(run), "--out", str(tmp_path / "m"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err and not (tmp_path / "m").exists()


def test_push_to_hub_checks_the_repo_id_before_saving(run):
    with pytest.raises(ValueError, match=r"OWNER/NAME \(.*\), got 'tiny-miro'"):
        MiroPipeline.from_pretrained(run / "model").push_to_hub("tiny-miro")
