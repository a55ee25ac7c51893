"""What the service shows: runs as JSON, progress, merged /metrics, the HTML index (part of Service)."""

from __future__ import annotations

import contextlib
import html
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ..config.files import read_json
from .common import ARTIFACTS, CHILD_LOG, FINAL, ActiveRun, _now_iso, _tail_lines

_VERDICT_CLASS = {"pass": "ok", "fail": "bad", "inconclusive": "warn"}
_VERDICT_WORDS = {"pass": "meets SLO", "fail": "fails SLO", "inconclusive": "SLO inconclusive"}


def _verdict_of(c: dict[str, Any]) -> str | None:
    v = c.get("slo_verdict")
    if v is None and c.get("slo_ok") is not None:
        v = "pass" if c["slo_ok"] else "fail"
    return v


class ServiceViews:
    def describe(self, row: dict[str, Any]) -> dict[str, Any]:
        out = {k: row.get(k) for k in ("id", "kind", "scenario", "status", "exit_code", "error", "schedule_id")}
        out["label"] = (row.get("request") or {}).get("label")
        out["overrides"] = (row.get("request") or {}).get("overrides", [])
        for key in ("created_at", "started_at", "finished_at"):
            out[key] = _now_iso(row.get(key))
        out["summary"] = row.get("summary")
        out["regression"] = row.get("regression")
        active = self.active.get(row.get("id", ""))
        if active is not None:
            out["progress"] = self.progress(row["id"])
        run_dir = row.get("run_dir") or (str(self._locate_run_dir(row["id"])) if row.get("id") and self._locate_run_dir(row["id"]) else None)
        out["artifacts"] = [name for name in ARTIFACTS if run_dir and (Path(run_dir) / name).exists()]
        return out

    def progress(self, run_id: str) -> dict[str, Any]:
        """Lines in the run's results log (counted incrementally) and its planned requests."""
        active = self.active.get(run_id)
        if active is None:
            return {"results_lines": 0, "planned_requests_per_candidate": None, "last_line": None}
        run_dir = self._locate_run_dir(run_id)
        if run_dir is not None and (run_dir / "results.jsonl").exists():
            with open(run_dir / "results.jsonl", "rb") as f:
                f.seek(active.results_offset)
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    active.results_lines += chunk.count(b"\n")
                    active.results_offset += len(chunk)
        if active.planned is None and run_dir is not None and (run_dir / "run.json").exists():
            with contextlib.suppress(OSError, ValueError):
                active.planned = read_json(run_dir / "run.json").get("planned_requests")
        last = _tail_lines(active.out_dir / CHILD_LOG, 1)
        return {"results_lines": active.results_lines, "planned_requests_per_candidate": active.planned,
                "last_line": last[0] if last else None}

    def _metrics_port(self, run_id: str, active: ActiveRun) -> int | None:
        """The child's /metrics port, from its run.json (the documented child protocol: the run
        rewrites run.json with `metrics_port` once its endpoint listens)."""
        if active.metrics_port is None:
            run_dir = self._locate_run_dir(run_id)
            if run_dir is not None and (run_dir / "run.json").exists():
                with contextlib.suppress(OSError, ValueError):
                    active.metrics_port = read_json(run_dir / "run.json").get("metrics_port")
        return active.metrics_port

    async def metrics_text(self) -> bytes:
        """Every active run's series (scraped from its own endpoint) merged, plus the service's."""
        families: dict[str, Metric] = {}
        for run_id, active in list(self.active.items()):
            port = self._metrics_port(run_id, active)
            if port is None or self._session is None:
                continue
            try:
                async with self._session.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    text = await resp.text()
            except (aiohttp.ClientError, TimeoutError, OSError):
                continue
            for fam in text_string_to_metric_families(text):
                merged = families.setdefault(fam.name, fam)
                if merged is not fam:
                    merged.samples.extend(fam.samples)
        for fam in families.values():  # series every run exports alike (build info) appear once
            seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
            unique = []
            for sample in fam.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in seen:
                    seen.add(key)
                    unique.append(sample)
            fam.samples = unique
        runs = GaugeMetricFamily("loadbench_service_runs", "Runs known to the service by status", labels=["status"])
        counts: dict[str, int] = {}
        for row in self.history.list_runs(limit=100_000):
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        for status in ("queued", "running", *FINAL):
            runs.add_metric([status], counts.get(status, 0))
        regression = GaugeMetricFamily("loadbench_regression",
                                       "1 when the latest run of a scenario regressed against its baseline on this metric",
                                       labels=["scenario", "candidate", "metric"])
        for (scenario, candidate, metric), value in sorted(self.regressions.items()):
            regression.add_metric([scenario, candidate, metric], value)

        class _Merged:
            def collect(self) -> list[Metric]:
                return [*families.values(), runs, regression]

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Merged())  # type: ignore[arg-type]
        return generate_latest(registry)

    def index_html(self) -> str:
        rows = self.history.list_runs(limit=200)
        head = ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>loadbench service</title><style>"
                "body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
                "td,th{border-bottom:1px solid #ddd;padding:.3em .7em;text-align:left}.bad{color:#b00020}.ok{color:#1b7f3b}.warn{color:#9a6700}"
                "</style></head><body><h1>loadbench service</h1>")
        out = [head, f"<p>{len(self.active)} running, {sum(1 for r in rows if r['status'] == 'queued')} queued. "
                     "<a href='/openapi.yaml'>API (OpenAPI)</a> · <a href='/metrics'>metrics</a></p>",
               "<table id='runs'><thead><tr><th>run</th><th>scenario</th><th>status</th><th>created</th>"
               "<th>verdicts</th><th>regression</th><th>report</th></tr></thead><tbody>"]
        for r in rows:
            cands = ((r.get("summary") or {}).get("candidates") or {})
            verdicts = ", ".join(
                f"<span class='{_VERDICT_CLASS.get(_verdict_of(c), '')}'>{html.escape(n)}: "
                f"{_VERDICT_WORDS.get(_verdict_of(c), 'no SLO')}</span>"
                for n, c in cands.items())
            if (r.get("summary") or {}).get("valid") is False:
                verdicts = "<span class='bad'>invalid run (the client could not keep up; see the report)</span>" + (
                    ", " + verdicts if verdicts else "")
            reg = r.get("regression") or {}
            reg_text = ("<span class='bad'>regressed: " + html.escape(", ".join(reg.get("regressed", []))) + "</span>"
                        if reg.get("regressed") else ("none" if reg else "-"))
            link = (f"<a href='/api/v1/runs/{html.escape(r['id'])}/artifacts/report.html'>report</a>"
                    if r.get("run_dir") and (Path(r["run_dir"]) / "report.html").exists() else "")
            out.append(f"<tr data-status='{html.escape(r['status'])}'><td>{html.escape(r['id'])}</td><td>{html.escape(r['scenario'])}</td>"
                       f"<td class='status'>{html.escape(r['status'])}</td><td>{_now_iso(r['created_at'])}</td>"
                       f"<td>{verdicts or '-'}</td><td>{reg_text}</td><td>{link}</td></tr>")
        out.append("</tbody></table></body></html>")
        return "".join(out)
