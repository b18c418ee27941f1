"""The studio's HTTP server: one static page and a small JSON API (Starlette; served by uvicorn).

Every API call names its client (the `X-Studio-Client` header, or `?client=` for image URLs): a client sees,
cancels and downloads only its own jobs and history. Errors are JSON `{"error": "one line"}` with status 400
(bad request), 404 (not yours or not found) or 429 (too many jobs waiting).

    GET    /                         the page                 GET  /api/info               models, presets, limits
    POST   /api/jobs                 queue a request          GET  /api/jobs/{id}          status, progress, results
    DELETE /api/jobs/{id}            cancel                   GET  /api/jobs/{id}/preview  PNG of the current estimate
    GET    /api/images/{id}/{file}   a result PNG             GET  /api/history            this client's jobs
    POST   /api/history/{id}/star    star an image            GET  /api/history/export.zip every image + settings
    POST   /api/settings-from-png    the settings a studio PNG carries
"""

from __future__ import annotations

import json
import re
from importlib import resources

from mirokit.studio.history import settings_from_png

_CLIENT = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_FILE = re.compile(r"^\d{3}\.png$")
STATIC = {"index.html": "text/html; charset=utf-8", "studio.js": "text/javascript; charset=utf-8",
          "studio.css": "text/css; charset=utf-8"}
MAX_UPLOAD = 20 * 1024 * 1024


def _static(name: str) -> bytes:
    return resources.files("mirokit.studio").joinpath("static", name).read_bytes()


def build_app(studio):
    """The Starlette application serving `studio` (a mirokit.studio.session.Studio)."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    def error(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def client_of(request) -> str | None:
        client = request.headers.get("x-studio-client") or request.query_params.get("client", "")
        return client if _CLIENT.match(client) else None

    def needs_client(handler):
        async def wrapped(request):
            client = client_of(request)
            if client is None:
                return error("missing or malformed client id (X-Studio-Client header)")
            return await handler(request, client)
        return wrapped

    async def page(request):
        return Response(_static("index.html"), media_type=STATIC["index.html"],
                        headers={"Cache-Control": "no-store"})

    async def static(request):
        name = request.path_params["name"]
        if name not in STATIC:
            return error(f"no file {name}", 404)
        return Response(_static(name), media_type=STATIC[name], headers={"Cache-Control": "no-store"})

    async def info(request):
        return JSONResponse(studio.info())

    @needs_client
    async def submit(request, client):
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return error("the request is not valid JSON")
        try:
            job = studio.submit(client, body)
        except ValueError as err:
            status = 429 if "jobs waiting" in str(err) else 400
            return error(str(err).strip().splitlines()[0], status)
        return JSONResponse(studio.queue.status(job))

    def job_or_404(request, client):
        return studio.queue.get(request.path_params["job"], client)

    @needs_client
    async def job_status(request, client):
        job = job_or_404(request, client)
        return error("no such job", 404) if job is None else JSONResponse(studio.queue.status(job))

    @needs_client
    async def cancel(request, client):
        job = studio.queue.cancel(request.path_params["job"], client)
        return error("no such job", 404) if job is None else JSONResponse(studio.queue.status(job))

    @needs_client
    async def preview(request, client):
        job = job_or_404(request, client)
        data = None if job is None else job.preview
        return error("no preview", 404) if data is None else Response(data, media_type="image/png",
                                                                      headers={"Cache-Control": "no-store"})

    @needs_client
    async def image(request, client):
        job_id, name = request.path_params["job"], request.path_params["file"]
        ours = studio.queue.get(job_id, client) is not None or studio.history.owns(job_id, client)
        if not ours or not _FILE.match(name):
            return error("no such image", 404)
        path = studio.history.folder(job_id) / name
        if not path.is_file():
            return error("no such image", 404)
        return Response(path.read_bytes(), media_type="image/png")

    @needs_client
    async def history(request, client):
        return JSONResponse({"jobs": studio.history.entries(client)[:100]})

    @needs_client
    async def star(request, client):
        try:
            body = json.loads(await request.body() or b"{}")
            stars = studio.history.star(request.path_params["job"], client, int(body["index"]),
                                        bool(body.get("starred", True)))
        except KeyError as err:
            return error(str(err).strip("'\""), 404)
        except (ValueError, TypeError):
            return error("star needs {\"index\": N, \"starred\": true|false}")
        return JSONResponse({"starred": stars})

    @needs_client
    async def export(request, client):
        data = studio.history.export_zip(client, starred_only=request.query_params.get("starred") == "1")
        return Response(data, media_type="application/zip",
                        headers={"Content-Disposition": "attachment; filename=mirokit-studio.zip"})

    async def from_png(request):
        data = await request.body()
        if len(data) > MAX_UPLOAD:
            return error("the file is larger than 20 MB")
        try:
            return JSONResponse(settings_from_png(data))
        except ValueError as err:
            return error(str(err))

    routes = [Route("/", page), Route("/static/{name}", static), Route("/api/info", info),
              Route("/api/jobs", submit, methods=["POST"]),
              Route("/api/jobs/{job}", job_status, methods=["GET"]),
              Route("/api/jobs/{job}", cancel, methods=["DELETE"]),
              Route("/api/jobs/{job}/preview", preview),
              Route("/api/images/{job}/{file}", image),
              Route("/api/history", history), Route("/api/history/export.zip", export),
              Route("/api/history/{job}/star", star, methods=["POST"]),
              Route("/api/settings-from-png", from_png, methods=["POST"])]
    return Starlette(routes=routes)


def serve(studio, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve `studio` until interrupted."""
    import uvicorn

    uvicorn.run(build_app(studio), host=host, port=port, log_level="warning")
