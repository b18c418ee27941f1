"""Load test of `mirokit studio` on loopback: N concurrent clients each load the page, queue a generation, poll
it and fetch their images, while a prober keeps loading the page. Prints p50 / p99 of page loads (idle and under
load) and of jobs (submit -> done), and checks that every client got its own images and nothing was lost.

    .venv/bin/python bench/studio_load.py                       # 20 clients, the test suite's tiny model
    .venv/bin/python bench/studio_load.py --model demo_out/runs/miro/model --clients 20 --steps 6

This is a benchmark: it reports, it does not assert a time.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a model folder (default: a tiny random model built here)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--images", type=int, default=1, help="images per client's job")
    args = parser.parse_args()

    import httpx
    import torch
    import uvicorn

    from mirokit.pipeline import MiroPipeline
    from mirokit.registry import load_plugins
    from mirokit.studio.server import build_app
    from mirokit.studio.session import Studio

    torch.set_num_threads(1)
    load_plugins()
    work = Path(tempfile.mkdtemp(prefix="studio_load_"))
    if args.model is None:
        sys.path.insert(0, str(ROOT / "tests" / "studio"))
        from studio_kit import KEYS, save_tiny_model

        model = str(save_tiny_model(work / "model", KEYS))
    else:
        model = args.model
    studio = Studio({"model": MiroPipeline.from_pretrained(model)}, work / "out", sources={"model": model},
                    max_queued_per_client=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(build_app(studio), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"

    def load_page(http) -> float:
        start = time.perf_counter()
        for path in ("/", "/static/studio.js", "/static/studio.css", "/api/info"):
            http.get(base + path).raise_for_status()
        return time.perf_counter() - start

    with httpx.Client() as http:
        idle = [load_page(http) for _ in range(20)]

    page_loads, jobs, problems = [], [], []
    stop = threading.Event()

    def prober():
        with httpx.Client() as http:
            while not stop.is_set():
                page_loads.append(load_page(http))
                time.sleep(0.05)

    prompts = ["a photo of a red circle", "a photo of a blue square", "two green stars", "a yellow ring"]

    def client(i: int):
        prompt = prompts[i % len(prompts)]
        headers = {"X-Studio-Client": f"load-client-{i:04d}"}
        with httpx.Client(headers=headers, timeout=600) as http:
            page_loads.append(load_page(http))
            start = time.perf_counter()
            r = http.post(base + "/api/jobs", json={"prompt": prompt, "steps": args.steps,
                                                   "num_images": args.images, "seed": i})
            if r.status_code != 200:
                problems.append(f"client {i}: {r.status_code} {r.text}")
                return
            job = r.json()
            while job["status"] in ("queued", "running"):
                time.sleep(0.1)
                job = http.get(f"{base}/api/jobs/{job['id']}").json()
            jobs.append(time.perf_counter() - start)
            if job["status"] != "done" or len(job["results"]) != args.images:
                problems.append(f"client {i}: job {job['status']} with {len(job['results'])} images")
                return
            for result in job["results"]:
                if result["prompt"] != prompt or result["settings"]["seed"] != i:  # the seed names the client
                    problems.append(f"client {i} got another client's image")
                if http.get(f"{base}/api/images/{job['id']}/{result['file']}").status_code != 200:
                    problems.append(f"client {i}: image missing")
            other = {"X-Studio-Client": f"load-client-{(i + 1) % args.clients:04d}"}
            if httpx.get(f"{base}/api/jobs/{job['id']}", headers=other).status_code != 404:
                problems.append(f"client {i}: its job is visible to another client")

    probe = threading.Thread(target=prober)
    probe.start()
    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    stop.set()
    probe.join()
    server.should_exit = True

    ms = lambda xs, q: f"{1000 * percentile(xs, q):.0f}"
    print(f"{args.clients} clients, {args.images} image(s) of {args.steps} steps each, model {model}")
    print("| measure | n | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|")
    print(f"| page load (page + script + style + info), idle | {len(idle)} | {ms(idle, 50)} | {ms(idle, 99)} |")
    print(f"| page load under load | {len(page_loads)} | {ms(page_loads, 50)} | {ms(page_loads, 99)} |")
    if jobs:
        print(f"| job, submit -> done (queued behind the others) | {len(jobs)} | {ms(jobs, 50)} | {ms(jobs, 99)} |")
    print(f"all {args.clients} jobs in {wall:.1f} s ({statistics.mean(jobs) if jobs else float('nan'):.1f} s mean); "
          f"jobs done: {len(jobs)}/{args.clients}; problems: {len(problems)}")
    for p in problems[:10]:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
