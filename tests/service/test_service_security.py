"""The service as an attacker on the same host would probe it: secrets and files stay where the
operator put them, reads need a token, every input and queue is bounded, nothing answers 500."""

import asyncio
import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from aiohttp import web

from tests.service.test_service import TOKEN, Server, free_port, write_scenarios

SECRET = "s3cret-ungranted-value"
GRANTED = "granted-key-value"
MARKER = "TOP-SECRET-MARKER-7f3a"


class Listener:
    """A recording OpenAI-compatible endpoint on loopback: every request's headers are kept."""

    def __init__(self) -> None:
        self.port = free_port()
        self.headers: list[dict[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()

        async def any_request(request: web.Request) -> web.Response:
            self.headers.append(dict(request.headers))
            if request.path.endswith("/models"):
                return web.json_response({"data": [{"id": "m"}]})
            return web.json_response({"id": "x", "object": "chat.completion", "model": "m",
                                      "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                                   "finish_reason": "stop"}],
                                      "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})

        app.router.add_route("*", "/{tail:.*}", any_request)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def seen(self) -> str:
        return json.dumps(self.headers)


@pytest.fixture(scope="module")
def listener():
    return Listener()


@pytest.fixture(scope="module")
def secure(tmp_path_factory, listener):
    root = tmp_path_factory.mktemp("secure")
    sdir = write_scenarios(root)
    (root / "outside.jsonl").write_text(json.dumps({"ts": MARKER, "prompt": MARKER}) + "\n")
    server = Server(root, sdir, args=("--allow-key", f"GRANTED_KEY=127.0.0.1:{listener.port}", "--max-queue", "3",
                                      "--max-schedules", "1", "--keep-runs", "4", "--max-rate-qps", "500"),
                    env={"GRANTED_KEY": GRANTED, "UNGRANTED_SECRET": SECRET})
    yield server
    server.stop()


def inline(listener, key_env=None, host=None, **load):
    load = {"rate_qps": 20, "requests": 10, "arrival": "constant", **load}
    cand = {"name": "c", "base_url": f"http://{host or '127.0.0.1'}:{listener.port}/v1", "model": "m"}
    if key_env:
        cand["api_key_env"] = key_env
    return {"scenario_yaml": json.dumps({"dataset": "data/intents.jsonl", "candidates": [cand], "load": load})}


def with_dataset(body, sdir):
    data = json.loads(body["scenario_yaml"])
    data["dataset"] = str(sdir / "data" / "intents.jsonl")
    return {"scenario_yaml": json.dumps(data)}


def test_no_token_and_no_ungranted_variable_ever_leaves(secure, listener):
    sdir = secure.root / "scenarios"
    for key_env, host, needle in (("LOADBENCH_TOKEN", None, "service's own token"),
                                  ("UNGRANTED_SECRET", None, "not granted"),
                                  ("GRANTED_KEY", "localhost", "granted for"),
                                  (None, "attacker.invalid", "not among the hosts")):
        status, answer = secure.call("POST", "/api/v1/runs", with_dataset(inline(listener, key_env, host), sdir))
        assert status == 403 and needle in answer["error"], answer
    # a granted key to its granted host goes through, and only it reaches the listener
    status, run = secure.call("POST", "/api/v1/runs", with_dataset(inline(listener, "GRANTED_KEY"), sdir))
    assert status == 201, run
    done = secure.wait(run["id"], ("done", "failed"), timeout=120)
    assert done["status"] == "done", done
    seen = listener.seen()
    assert f"Bearer {GRANTED}" in seen
    assert TOKEN not in seen and SECRET not in seen


def test_child_runs_do_not_inherit_the_services_environment(secure):
    _, run = secure.call("POST", "/api/v1/runs", {"scenario": "long.yaml"})
    secure.wait(run["id"], ("running",))
    children = []
    deadline = time.monotonic() + 20
    while not children and time.monotonic() < deadline:
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    stat = Path(f"/proc/{pid}/stat").read_text()
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == secure.proc.pid and b"loadbench" in cmdline:
                    children.append(pid)
        time.sleep(0.2)
    assert children
    env = Path(f"/proc/{children[0]}/environ").read_bytes().decode(errors="replace")
    assert "LOADBENCH_TOKEN" not in env and SECRET not in env and GRANTED not in env  # long.yaml names no key
    assert secure.call("POST", f"/api/v1/runs/{run['id']}/cancel")[0] == 202
    secure.wait(run["id"], ("cancelled",), timeout=60)


@pytest.mark.parametrize("overrides", [
    ["load={arrival: trace, trace: {path: OUTSIDE, request_field: prompt, timestamp_field: ts}}"],
    ["load.trace={path: OUTSIDE, request_field: prompt, timestamp_field: ts}", "load.arrival=trace"],
    ["dataset=OUTSIDE"],
])
def test_files_outside_the_scenarios_directory_stay_unread(secure, overrides):
    outside = str(secure.root / "outside.jsonl")
    body = {"scenario": "quick.yaml", "overrides": [o.replace("OUTSIDE", outside) for o in overrides]}
    status, answer = secure.call("POST", "/api/v1/runs", body)
    assert status == 403, answer
    assert MARKER not in json.dumps(answer)
    listing = secure.call("GET", "/api/v1/runs?limit=1000")[1]
    assert MARKER not in json.dumps(listing)


def test_reads_need_a_token(secure):
    _, run = secure.call("POST", "/api/v1/runs", {"scenario": "quick.yaml"})
    secure.wait(run["id"], ("done",))
    for path in ("/api/v1/runs", f"/api/v1/runs/{run['id']}", f"/api/v1/runs/{run['id']}/artifacts/results.jsonl",
                 f"/api/v1/runs/{run['id']}/artifacts/run.json", f"/api/v1/runs/{run['id']}/events",
                 "/api/v1/schedules", "/api/v1/baselines", "/metrics"):
        assert secure.call("GET", path, token=None)[0] == 401, path
        assert secure.call("GET", path, token="wrong")[0] == 401, path
    status, _ = secure.call("GET", "/", token=None)
    assert status == 200  # urllib follows the redirect to the login form
    assert secure.call("GET", "/healthz", token=None)[0] == 200


def raw_request(port: int, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + b"\r\n\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def test_hostile_inputs_get_4xx_never_500(secure):
    # an alias bomb: refused in well under a second, before anything expands it
    bomb = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
                                                    for p, c in zip("abcdefgh", "bcdefghi"))
    started = time.monotonic()
    status, answer = secure.call("POST", "/api/v1/runs", {"scenario_yaml": bomb})
    assert status == 400 and "aliases" in answer["error"] and time.monotonic() - started < 1.0
    # 50,000 levels of nesting, as YAML and as JSON
    assert secure.call("POST", "/api/v1/runs", {"scenario_yaml": "[" * 50_000 + "]" * 50_000})[0] == 400
    deep = b'{"scenario_yaml": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    head = (f"POST /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1:{secure.port}\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(deep)}\r\nConnection: close").encode()
    assert raw_request(secure.port, head, deep)[0] == 400
    # an Authorization header that is not UTF-8
    head = f"GET /api/v1/runs HTTP/1.1\r\nHost: 127.0.0.1:{secure.port}\r\nConnection: close\r\nAuthorization: Bearer ".encode()
    assert raw_request(secure.port, head + b"\xff\xfe\xc3(")[0] == 401
    # sizes: a rate past the scenario's own bound, a plan past the service's
    for load, status in (({"rate_qps": 1e12}, 400), ({"rate_qps": 100_000, "duration_s": 604_800}, 403),
                         ({"rate_qps": 400, "duration_s": 100_000}, 403)):
        body = {"scenario": "quick.yaml", "overrides": [f"load.{k}={v}" for k, v in load.items()] + ["load.requests=null"]}
        assert secure.call("POST", "/api/v1/runs", body)[0] == status, load
    assert secure.call("GET", "/healthz", token=None)[0] == 200  # still up


def test_host_header_must_name_the_service(secure):
    head = f"GET /healthz HTTP/1.1\r\nHost: rebind.attacker.invalid:{secure.port}\r\nConnection: close".encode()
    assert raw_request(secure.port, head)[0] == 421
    head = f"GET /healthz HTTP/1.1\r\nHost: localhost:{secure.port}\r\nConnection: close".encode()
    assert raw_request(secure.port, head)[0] == 200


def test_queue_and_schedules_are_capped(secure):
    _, first = secure.call("POST", "/api/v1/runs", {"scenario": "long.yaml"})
    secure.wait(first["id"], ("running",))
    queued = [secure.call("POST", "/api/v1/runs", {"scenario": "quick.yaml"}) for _ in range(3)]
    assert all(status == 201 for status, _ in queued)
    status, answer = secure.call("POST", "/api/v1/runs", {"scenario": "quick.yaml"})
    assert status == 429 and "queue is full" in answer["error"]
    for _, run in queued:
        secure.call("POST", f"/api/v1/runs/{run['id']}/cancel")
    secure.call("POST", f"/api/v1/runs/{first['id']}/cancel")
    secure.wait(first["id"], ("cancelled",), timeout=60)
    status, answer = secure.call("POST", "/api/v1/schedules", {"cron": "* * * * *", "run": {"scenario": "quick.yaml"}})
    assert status == 400 and "at most one run every" in answer["error"]
    assert secure.call("POST", "/api/v1/schedules", {"cron": "0 3 * * *", "run": {"scenario": "quick.yaml"}})[0] == 201
    status, _ = secure.call("POST", "/api/v1/schedules", {"cron": "0 4 * * *", "run": {"scenario": "quick.yaml"}})
    assert status == 429


def test_pages_carry_browser_hardening(secure):
    import urllib.request

    _, run = secure.call("POST", "/api/v1/runs", {"scenario": "quick.yaml"})
    secure.wait(run["id"], ("done",))
    for path in ("/login", f"/api/v1/runs/{run['id']}/artifacts/report.html", "/api/v1/runs"):
        req = urllib.request.Request(secure.url + path, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.headers["X-Content-Type-Options"] == "nosniff", path
            csp = resp.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp, path


def test_retention_keeps_the_newest_runs(secure):
    ids = []
    for _ in range(5):
        _, run = secure.call("POST", "/api/v1/runs", {"scenario": "quick.yaml"})
        secure.wait(run["id"], ("done",))
        ids.append(run["id"])
    time.sleep(1)
    assert secure.call("GET", f"/api/v1/runs/{ids[0]}")[0] == 404  # --keep-runs 4
    assert not (secure.root / "data" / "runs" / ids[0]).exists()
    assert secure.call("GET", f"/api/v1/runs/{ids[-1]}")[0] == 200


def test_a_run_killed_with_its_service_still_writes_its_summary(tmp_path):
    sdir = write_scenarios(tmp_path)
    server = Server(tmp_path, sdir)
    try:
        _, run = server.call("POST", "/api/v1/runs", {"scenario": "long.yaml"})
        server.wait(run["id"], ("running",))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and server.get(f"/api/v1/runs/{run['id']}")["progress"]["results_lines"] < 20:
            time.sleep(0.3)
        server.stop(signal.SIGKILL)
    finally:
        server.stop()
    out = tmp_path / "data" / "runs" / run["id"]
    deadline = time.monotonic() + 60
    summaries: list[Path] = []
    while time.monotonic() < deadline and not summaries:
        summaries = list(out.glob("*/summary.json"))
        time.sleep(0.5)
    assert summaries, (out / "child.log").read_text() if (out / "child.log").exists() else "no child log"
    summary = json.loads(summaries[0].read_text())
    assert summary["candidates"]["a"]["requests"]["sent"] >= 20
    assert summary["outcome"]["stop_reason"].startswith("stopped by SIGTERM")
