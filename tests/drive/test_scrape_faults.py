"""server_metrics that fail (a refused port, a page that is not Prometheus text, a page that takes
5 s) are counted and reported, and change nothing about the run: its requests and schedule lag are
those of the same run without scraping."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import loadbench

pytestmark = pytest.mark.slow


class FaultPages(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(5)
        body = b"<html><body>not metrics</body></html>" if self.path == "/html" else b"# TYPE x gauge\nx 1\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if self.path == "/html" else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        """Quiet: the test reads the run's counts, not the fault server's access log."""


@pytest.fixture()
def fault_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FaultPages)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def scenario(tmp_path, scrape_urls):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "input": f"question {i}", "target": "x"}) + "\n" for i in range(20)))
    candidates = []
    for i, url in enumerate(scrape_urls):
        cand = {"name": f"c{i}", "sim": "instant", "sim_params": {"filler_tokens": 4}}
        if url:
            cand["server_metrics"] = {"url": url, "interval_s": 0.5}
        candidates.append(cand)
    path = tmp_path / f"s{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(json.dumps({"name": "faults", "dataset": str(data), "candidates": candidates,
                                "load": {"arrival": "poisson", "rate_qps": 40, "requests": 80, "seed": 5}}))
    return path


def test_failing_scrapes_are_counted_and_leave_the_run_alone(tmp_path, fault_server):
    urls = [f"http://127.0.0.1:{refused_port()}/metrics?token=s3cr3t-in-url", fault_server + "/html", fault_server + "/slow"]
    faulty = loadbench.run(scenario(tmp_path, urls), out=tmp_path / "runs")
    plain = loadbench.run(scenario(tmp_path, [None, None, None]), out=tmp_path / "runs")
    for name, expected in zip(("c0", "c1", "c2"), ("refused", "not_prometheus", "timeout")):
        cand = faulty.summary["candidates"][name]
        server = cand["server"]
        assert server["scrapes"]["ok"] == 0 and set(server["scrapes"]["failures"]) == {expected}, server["scrapes"]
        assert server["scrapes"]["count"] >= 3  # before, during, after: still tried
        assert server["caveats"] and server["reconciliation"] == {}
        # the run itself: every request answered, as in the run that scraped nothing
        assert cand["requests"]["ok"] == plain.summary["candidates"][name]["requests"]["ok"] == 80
        lag, lag_plain = cand["schedule_lag_s"]["p99"], plain.summary["candidates"][name]["schedule_lag_s"]["p99"]
        assert lag <= max(4 * lag_plain, 0.01), (name, lag, lag_plain)  # generous: a shared, noisy machine
    assert faulty.exit_code == plain.exit_code
    # a query string (where tokens hide) never reaches an artifact
    for path in faulty.run_dir.iterdir():
        assert "s3cr3t-in-url" not in path.read_text(errors="replace"), path.name
    assert faulty.summary["candidates"]["c0"]["server"]["url"].endswith("/metrics?…")
