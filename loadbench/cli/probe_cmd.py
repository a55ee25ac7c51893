"""`loadbench probe URL`: a capability table of one endpoint before a benchmark points at it."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from ..config.errors import ConfigError
from ..config.scenario import request_headers
from ..config.server_metrics import shown_url
from ..drive.probe import ProbeReport, probe

EXIT_UNREACHABLE = 1
MARKS = {"yes": "yes", "no": "no", "partly": "partly", "error": "error", "skipped": "-"}
LABELS = {"models": "GET /models", "chat": "chat completions", "completions": "text completions",
          "streaming": "streaming (SSE)", "usage_in_stream": "usage in streams", "json_object": "response_format json_object",
          "json_schema": "response_format json_schema", "tool_calls": "tool calls", "metrics": "/metrics",
          "reachable": "reachable"}


def add_probe(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pr = sub.add_parser("probe", help="ask an OpenAI-compatible endpoint what it supports (a capability table)")
    pr.add_argument("url", help="the base URL, e.g. http://127.0.0.1:8000/v1")
    pr.add_argument("--model", help="the model to ask (default: the first that /models lists)")
    pr.add_argument("--api-key-env", help="environment variable holding the API key (sent as a bearer token)")
    pr.add_argument("--metrics-url", help="the Prometheus endpoint (default: /metrics on the same host and port)")
    pr.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    pr.add_argument("--json", action="store_true", help="print the report as JSON")


def table(report: ProbeReport) -> str:
    lines = [f"{shown_url(report.base_url)}  model: {report.model or '(none listed)'}"]
    width = max(len(v) for v in LABELS.values())
    for check in report.checks:
        label = LABELS.get(check.name, check.name)
        lines.append(f"  {label:<{width}}  {MARKS.get(check.status, check.status):<7} {check.detail}".rstrip())
    if report.ttft_s is not None:
        lines.append(f"  {'time to first token':<{width}}  {report.ttft_s * 1000:.0f} ms (one streamed request)")
    return "\n".join(lines)


def _cmd_probe(args: argparse.Namespace) -> int:
    if not args.url.startswith(("http://", "https://")):
        raise ConfigError.single("url", f"{args.url!r} is not an http:// or https:// URL")
    secret = None
    if args.api_key_env:
        secret = os.environ.get(args.api_key_env)
        if not secret:
            raise ConfigError.single("--api-key-env", f"{args.api_key_env} is not set")
    headers = request_headers({}, secret)
    report = asyncio.run(probe(args.url, model=args.model, headers=headers, metrics_url=args.metrics_url,
                               timeout_s=args.timeout))
    if args.json:
        text = json.dumps(report.as_dict(), indent=2)
    else:
        text = table(report)
    if secret:
        text = text.replace(secret, "[REDACTED]")
    print(text)
    if not report.reachable:
        print(f"loadbench: {shown_url(args.url)} is not reachable", file=sys.stderr)
        return EXIT_UNREACHABLE
    return 0
