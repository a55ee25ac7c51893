"""API keys come only from the named environment variable and never appear in any output."""

import json
import os
import sys

from aiohttp import web

from tests.conftest import ROOT

KEY = "sk-live-TOPSECRET-0123456789abcdef"


def echoing_server_app():
    """A provider that needs the key and echoes it back in its error bodies (some do)."""
    seen = []

    async def models(request):
        return web.json_response({"data": [{"id": "m"}]})

    async def chat(request):
        seen.append(request.headers.get("Authorization"))
        await request.json()
        n = len(seen)
        if n % 3 == 0:
            return web.json_response({"error": {"message": f"Invalid API key provided: {request.headers.get('Authorization')}"}}, status=401)
        if n % 3 == 1:
            return web.json_response({"error": {"message": f"rate limited for key {KEY}"}}, status=429)
        return web.json_response({"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 3, "completion_tokens": 1}})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app, seen


async def test_the_key_never_leaks(serve_app, tmp_path):
    app, seen = echoing_server_app()
    base = await serve_app(app)
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"input": "hello", "target": "ok"}) + "\n")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"""
name: secrets
dataset: {data}
candidates:
  - name: remote
    base_url: {base}/v1
    model: m
    stream: false
    api_key_env: LB_SECRET_KEY
load: {{arrival: constant, rate_qps: 20, duration_s: 1, warmup_s: 0}}
""")
    env = {**os.environ, "LB_SECRET_KEY": KEY}
    import asyncio

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loadbench", "run", str(scenario), "--out", str(tmp_path / "out"), "--fail-on", "none",
        "--metrics-port", "0", "--metrics-linger", "0", cwd=str(ROOT), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    assert seen and all(h == f"Bearer {KEY}" for h in seen)  # the key was really sent
    (run_dir,) = list((tmp_path / "out").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["candidates"]["remote"]["requests"]["errors"].get("http_429", 0) > 0  # echoing error bodies were recorded
    texts = {"stdout": out.decode(), "stderr": err.decode()}
    for path in run_dir.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    for where, text in texts.items():
        assert KEY not in text, where
        assert "TOPSECRET" not in text, where
    assert "[REDACTED]" in (run_dir / "results.jsonl").read_text()


def test_metrics_bind_to_loopback_by_default():
    from prometheus_client import CollectorRegistry

    from loadbench.engine.execute import MetricsOptions
    from loadbench.views.prometheus import MetricsServer

    options = MetricsOptions()
    assert options.host == "127.0.0.1"
    server = MetricsServer(CollectorRegistry(), port=0)
    server.start()
    try:
        assert server._server.server_address[0] == "127.0.0.1"
    finally:
        server.stop()
