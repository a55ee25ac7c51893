"""What a run settles before its first request: the preflight check and run.json's content."""

from __future__ import annotations

import asyncio
import os
import platform
import time
from pathlib import Path
from typing import Any

import aiohttp

from .._version import __version__
from ..config.errors import Problem
from ..config.scenario import Candidate
from ..config.server_metrics import metrics_url, shown_url
from ..drive.lanes import candidate_headers
from ..drive.probe import describe_error, usage_in_stream
from ..pacing.runner import Plan
from ..plan.resolve import Resolved

PREFLIGHT_TIMEOUT_S = 10.0


def public_candidate(cand: Candidate, base_url: str) -> dict[str, Any]:
    """A candidate as run.json records it: header names, never their values."""
    data = cand.model_dump(exclude={"headers"})
    data["base_url"] = base_url
    data["header_names"] = sorted(cand.headers)
    if cand.server_metrics is not None:
        sm = cand.server_metrics
        data["server_metrics"] = {"url": shown_url(metrics_url(sm, base_url)), "preset": sm.preset,
                                  "interval_s": sm.interval_s, "timeout_s": sm.effective_timeout_s}
    return data


def provenance() -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    return {
        "loadbench": __version__,
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "event_loop": f"{type(loop).__module__}.{type(loop).__name__}",
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "pid": os.getpid(),
    }


def run_meta(resolved: Resolved, run_id: str, plan: Plan, base_urls: dict[str, str]) -> dict[str, Any]:
    """run.json: what was run, against what, with which settings (no secrets)."""
    scenario = resolved.scenario
    judge_cfg = scenario.scoring.judge
    trace = resolved.trace
    return {
        "run_id": run_id,
        "scenario": scenario.name or Path(resolved.scenario_path).stem,
        "scenario_path": resolved.scenario_path,
        "scenario_file": str(Path(resolved.scenario_path).resolve()),
        "dataset": str(resolved.dataset_path) if resolved.dataset_path is not None else None,
        "trace": None if trace is None else {
            "path": scenario.load.trace.path if scenario.load.trace else None, "rows": trace.rows,
            "span_s": trace.span_s, "time_scale": scenario.load.trace.time_scale if scenario.load.trace else 1.0,
            "resorted": trace.resorted,
        },
        "items": len(resolved.items),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load": scenario.load.model_dump(),
        "planned_requests": len(plan.offsets_ns) if plan.mode == "open" else None,
        "candidates": {c.name: public_candidate(c, base_urls[c.name]) for c in scenario.candidates},
        "judge": judge_cfg.model_dump(exclude={"headers"}) if judge_cfg is not None else None,
        "item_tags": [item.tags for item in resolved.items],
        "fidelity": None if resolved.variants is None else {
            "variants": list(resolved.variants.skipped), "item_variants": resolved.variants.variant_of,
            "reference_name": scenario.fidelity.reference_name if scenario.fidelity and scenario.fidelity.reference_dataset else None,
            "item_bases": resolved.variants.base_of, "skipped": resolved.variants.skipped,
            "public_scores": {c.name: c.public_scores for c in scenario.candidates if c.public_scores},
        },
        "public_scores": {c.name: c.public_scores for c in scenario.candidates if c.public_scores},
        "session_items": [i for i, item in enumerate(resolved.items) if item.is_session],
        "agentic_items": [i for i, item in enumerate(resolved.items) if item.is_agentic],
        "multi_turn_items": [i for i, item in enumerate(resolved.items) if item.turns],
        "slo": scenario.slo,
        "validity": scenario.validity.limits(),
        "decision": scenario.decision.model_dump(),
        "provenance": provenance(),
    }


async def _preflight_one(session: aiohttp.ClientSession, cand: Candidate, base_url: str, headers: dict[str, str],
                         scenario_path: str, index: int, secret: str | None) -> Problem | None:
    """One GET of /models: a clear message before any load instead of a run of errors."""
    url = base_url.rstrip("/") + "/models"
    try:
        async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=PREFLIGHT_TIMEOUT_S)) as resp:
            if resp.status in (401, 403):
                return Problem(scenario_path, None, f"candidates[{index}]", f"{cand.name}: {url} refused the credentials (HTTP {resp.status})")
            if resp.status >= 500:
                return Problem(scenario_path, None, f"candidates[{index}]", f"{cand.name}: {url} answered HTTP {resp.status}")
            return None  # 404 and friends: many gateways have no /models; the endpoint is there
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        text = describe_error(exc)
        if secret:
            text = text.replace(secret, "[REDACTED]")
        return Problem(scenario_path, None, f"candidates[{index}].base_url", f"{cand.name}: cannot reach {base_url}: {text}")


async def _stream_usage_warning(session: aiohttp.ClientSession, cand: Candidate, base_url: str,
                                headers: dict[str, str]) -> str | None:
    """What `loadbench probe` would say about usage in streams, as a warning before the run."""
    if not cand.stream or cand.api != "chat":
        return None
    if await usage_in_stream(session, base_url, headers, cand.model) is False:
        return (f"{cand.name}: the endpoint sends no usage in streams (stream_options.include_usage): "
                "token counts and cost will be estimated, and server_metrics cannot reconcile tokens")
    return None


async def preflight(resolved: Resolved, base_urls: dict[str, str], warnings: list[str] | None = None) -> list[Problem]:
    """Every real (not simulated) candidate answers at all, with a plain session of its own; what it
    lacks that the run's numbers depend on goes to `warnings`."""
    checks = []
    asks = []
    sessions = []
    try:
        for index, cand in enumerate(resolved.scenario.candidates):
            if cand.sim is not None:
                continue
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=not cand.insecure), trust_env=False)
            sessions.append(session)
            secret = resolved.secrets.get(cand.name)
            headers = candidate_headers(cand, secret)
            checks.append(_preflight_one(session, cand, base_urls[cand.name], headers, resolved.scenario_path, index, secret))
            if warnings is not None:
                asks.append(_stream_usage_warning(session, cand, base_urls[cand.name], headers))
        problems = [p for p in await asyncio.gather(*checks) if p is not None]
        found = await asyncio.gather(*asks)  # asked alongside: an unreachable endpoint just answers None
        if warnings is not None and not problems:
            warnings.extend(w for w in found if w)
        return problems
    finally:
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
