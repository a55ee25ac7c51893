"""`loadbench serve` over HTTP: routes, authentication on every read and change, Host checks, browser
hardening, and the process entry.  Each run is a `loadbench run` child process (the same engine
as the CLI), so a crash of one run never takes the service down."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..config.errors import ConfigError
from .common import _ID, ARTIFACTS, FINAL, OPENAPI_PATH, SESSION_COOKIE, ApiError, ServiceConfig
from .history import ACTIVE
from .policy import split_host
from .runs import Service

SERVICE: web.AppKey[Service] = web.AppKey("service", Service)


def _host_guard(service: Service) -> Any:
    """Only Host headers naming this service: a web page cannot reach it by DNS rebinding."""
    allowed = {*LOOPBACK_NAMES, service.cfg.host.lower().strip("[]"), *(h.lower() for h in service.cfg.host_headers)}

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        host = (request.headers.get("Host") or "").lower()
        name = split_host(host)[0]
        if name not in allowed:
            return web.json_response({"error": f"Host {host!r} is not this service (allowed: loopback, the bind address, "
                                               "--allow-host-header)"}, status=421)
        return await handler(request)

    return guard


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        body = {"error": exc.message}
        if exc.field:
            body["field"] = exc.field
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        if exc.retry_after_s is not None:
            headers["Retry-After"] = str(exc.retry_after_s)
        return web.json_response(body, status=exc.status, headers=headers)
    except (RecursionError, UnicodeError) as exc:  # hostile input, never a 500
        return web.json_response({"error": f"the request could not be read: {type(exc).__name__}"}, status=400)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _body(request: web.Request) -> Any:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "request body too large") from None
    try:
        return orjson.loads(raw or b"null")
    except orjson.JSONDecodeError:
        raise ApiError(400, "the body is not valid JSON") from None


def build_app(service: Service) -> web.Application:
    app = web.Application(middlewares=[_host_guard(service), _errors], client_max_size=service.cfg.max_body_bytes)
    app[SERVICE] = service
    routes = web.RouteTableDef()

    _page_routes(routes, service)
    _run_routes(routes, service)
    _schedule_and_baseline_routes(routes, service)
    app.add_routes(routes)

    async def on_startup(_app: web.Application) -> None:
        await service.start()

    async def on_cleanup(_app: web.Application) -> None:
        await service.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.on_response_prepare.append(_harden_response)
    return app



def _run_or_404(service: Service) -> Any:
    def run_or_404(run_id: str) -> dict[str, Any]:
        row = service.history.get_run(run_id) if _ID.match(run_id) else None
        if row is None:
            raise ApiError(404, f"no run {run_id!r}")
        return row

    return run_or_404


def _page_routes(routes: web.RouteTableDef, service: Service) -> None:
    """The index, the login form, the API's description, liveness and /metrics."""
    @routes.get("/")
    async def index(request: web.Request) -> web.Response:
        try:
            service._check_read(request)
        except ApiError:
            raise web.HTTPSeeOther("/login") from None
        return web.Response(text=service.index_html(), content_type="text/html")

    @routes.get("/login")
    async def login_page(_r: web.Request) -> web.Response:
        return web.Response(text=LOGIN_HTML, content_type="text/html")

    @routes.post("/login")
    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        token = form.get("token")
        if not isinstance(token, str):
            raise ApiError(400, "give the token", "token")
        cookie = service.login(token)
        resp = web.HTTPSeeOther("/")
        resp.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="Strict", path="/", max_age=12 * 3600)
        raise resp

    @routes.get("/openapi.yaml")
    async def openapi(_r: web.Request) -> web.Response:
        return web.Response(body=OPENAPI_PATH.read_bytes(), content_type="application/yaml")

    @routes.get("/healthz")
    async def health(_r: web.Request) -> web.Response:
        return _json({"status": "ok", "running": len(service.active)})

    @routes.get("/metrics")
    async def metrics(request: web.Request) -> web.Response:
        if not service.cfg.open_metrics:
            service._check_read(request)
        return web.Response(body=await service.metrics_text(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def _run_routes(routes: web.RouteTableDef, service: Service) -> None:
    """Submit, list, read, cancel runs; their artifacts and event streams."""
    run_or_404 = _run_or_404(service)

    @routes.post("/api/v1/runs")
    async def submit(request: web.Request) -> web.Response:
        service._check_auth(request)
        return _json(service.submit(await _body(request)), status=201)

    @routes.get("/api/v1/runs")
    async def list_runs(request: web.Request) -> web.Response:
        service._check_read(request)
        q = request.query
        status = q.get("status")
        if status is not None and status not in (*ACTIVE, *FINAL):
            raise ApiError(400, f"unknown status {status!r}", "status")
        try:
            limit = int(q.get("limit", "50"))
        except ValueError:
            raise ApiError(400, "limit must be an integer", "limit") from None
        if not 1 <= limit <= 1000:
            raise ApiError(400, "limit must be between 1 and 1000", "limit")
        rows = service.history.list_runs(status=status, scenario=q.get("scenario"), limit=limit)
        return _json({"runs": [service.describe(r) for r in rows]})

    @routes.get("/api/v1/runs/{run_id}")
    async def get_run(request: web.Request) -> web.Response:
        service._check_read(request)
        return _json(service.describe(run_or_404(request.match_info["run_id"])))

    @routes.post("/api/v1/runs/{run_id}/cancel")
    async def cancel(request: web.Request) -> web.Response:
        service._check_auth(request)
        run_or_404(request.match_info["run_id"])
        return _json(service.cancel(request.match_info["run_id"]), status=202)

    @routes.get("/api/v1/runs/{run_id}/artifacts/{name}")
    async def artifact(request: web.Request) -> web.StreamResponse:
        service._check_read(request)
        row = run_or_404(request.match_info["run_id"])
        name = request.match_info["name"]
        if name not in ARTIFACTS:
            raise ApiError(404, f"no artifact {name!r}; known: {', '.join(ARTIFACTS)}")
        run_dir = row.get("run_dir") or (str(service._locate_run_dir(row["id"]) or ""))
        path = Path(run_dir) / name if run_dir else None
        if path is None or not path.is_file():
            raise ApiError(404, f"run {row['id']} has no {name} (yet)")
        return web.FileResponse(path)

    @routes.get("/api/v1/runs/{run_id}/events")
    async def events(request: web.Request) -> web.StreamResponse:
        service._check_read(request)
        run_id = request.match_info["run_id"]
        run_or_404(run_id)
        if service.streams >= service.cfg.max_streams:
            raise ApiError(503, f"{service.cfg.max_streams} event streams are open; try again later", retry_after_s=10)
        service.streams += 1
        try:
            return await _stream_events(request, service, run_id)
        finally:
            service.streams -= 1


def _schedule_and_baseline_routes(routes: web.RouteTableDef, service: Service) -> None:
    run_or_404 = _run_or_404(service)

    @routes.get("/api/v1/schedules")
    async def list_schedules(request: web.Request) -> web.Response:
        service._check_read(request)
        return _json({"schedules": service.history.list_schedules()})

    @routes.post("/api/v1/schedules")
    async def add_schedule(request: web.Request) -> web.Response:
        service._check_auth(request)
        return _json(service.add_schedule(await _body(request)), status=201)

    @routes.delete("/api/v1/schedules/{schedule_id}")
    async def delete_schedule(request: web.Request) -> web.Response:
        service._check_auth(request)
        if not service.history.delete_schedule(request.match_info["schedule_id"]):
            raise ApiError(404, "no such schedule")
        return web.Response(status=204)

    @routes.get("/api/v1/baselines")
    async def list_baselines(request: web.Request) -> web.Response:
        service._check_read(request)
        return _json({"baselines": service.history.baselines(request.query.get("scenario"))})

    @routes.put("/api/v1/baselines/{scenario}/{candidate}")
    async def set_baseline(request: web.Request) -> web.Response:
        return await _set_baseline(request, service, run_or_404)


async def _stream_events(request: web.Request, service: Service, run_id: str) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    deadline = time.monotonic() + service.cfg.stream_max_s  # every stream ends
    while time.monotonic() < deadline:
        row = service.history.get_run(run_id) or {}
        event = {"id": run_id, "status": row.get("status")}
        if run_id in service.active:
            event["progress"] = service.progress(run_id)
        await resp.write(b"event: progress\ndata: " + orjson.dumps(event) + b"\n\n")
        if row.get("status") in FINAL:
            await resp.write(b"event: end\ndata: " + orjson.dumps(service.describe(row)) + b"\n\n")
            break
        await asyncio.sleep(1.0)
    return resp


async def _set_baseline(request: web.Request, service: Service, run_or_404: Any) -> web.Response:
    service._check_auth(request)
    body = await _body(request)
    if not isinstance(body, dict) or not isinstance(body.get("run_id"), str):
        raise ApiError(400, "give run_id: the run whose results become the baseline", "run_id")
    row = run_or_404(body["run_id"])
    scenario, candidate = request.match_info["scenario"], request.match_info["candidate"]
    if row["status"] != "done" or candidate not in ((row.get("summary") or {}).get("candidates") or {}):
        raise ApiError(409, f"run {row['id']} is not a finished run with candidate {candidate!r}")
    if row["scenario"] != scenario:
        raise ApiError(409, f"run {row['id']} is of scenario {row['scenario']!r}, not {scenario!r}")
    service.history.set_baseline(scenario, candidate, row["id"])
    return _json({"scenario": scenario, "candidate": candidate, "run_id": row["id"]})


# Every page the service serves (the index, the login form, run reports) runs under this policy:
# no network fetches, no framing, inline styles and scripts only (reports are single files).
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
       "font-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
LOGIN_HTML = ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>loadbench service: log in</title>"
              "<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}</style></head><body>"
              "<h1>loadbench service</h1><p>Reading runs needs the service's token (or its read-only token).</p>"
              "<form method='post' action='/login'><label>token <input type='password' name='token' autocomplete='off'></label> "
              "<button type='submit'>log in</button></form></body></html>")


async def _harden_response(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")


def serve(cfg: ServiceConfig) -> None:
    token = os.environ.get(cfg.token_env)
    if not token:
        raise ConfigError.single(f"--token-env {cfg.token_env}", f"environment variable {cfg.token_env} is not set "
                                 "(it holds the bearer token every mutating API call must present)")
    if not cfg.scenarios_dir.is_dir():
        raise ConfigError.single("--scenarios", f"{cfg.scenarios_dir} is not a directory")
    read_token = None
    if cfg.read_token_env:
        read_token = os.environ.get(cfg.read_token_env)
        if not read_token:
            raise ConfigError.single(f"--read-token-env {cfg.read_token_env}", f"environment variable {cfg.read_token_env} is not set")
    protected = [e for e in (cfg.token_env, cfg.read_token_env) if e and e in cfg.key_grants]
    if protected:
        raise ConfigError.single("--allow-key", f"{protected[0]} holds the service's own token and can never be granted to runs")
    service = Service(cfg, token, read_token)
    print(f"loadbench serve: http://{cfg.host}:{cfg.port}/ (API /api/v1, docs /openapi.yaml, metrics /metrics); "
          f"data in {cfg.data_dir}", file=sys.stderr, flush=True)
    web.run_app(build_app(service), host=cfg.host, port=cfg.port, print=None, access_log=None)
