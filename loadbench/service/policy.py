"""What a service-submitted run may reach: hosts, key grants, files, scorer code, sizes (pure).

The service checks a submission's final scenario (after every override, loaded by the same
code as the CLI) against the operator's policy before it is queued, and the child run checks
it again before it sends anything (docs/service.md, "Threat model").
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

LOOPBACK = ("127.0.0.1", "localhost", "::1")
# What a child run inherits from the service's environment: nothing secret, only what a Python
# process needs to start; API keys are added one by one from the operator's grants.
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "HOME", "SSL_CERT_FILE", "SSL_CERT_DIR",
                 "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
MAX_YAML_DEPTH = 64
MAX_YAML_EVENTS = 200_000


@dataclass(frozen=True, slots=True)
class Policy:
    confine_dir: str
    allow_hosts: tuple[str, ...] = ()  # beyond loopback; "host" (any port) or "host:port"
    key_grants: dict[str, tuple[str, ...]] = field(default_factory=dict)  # env var -> hosts it may be sent to
    scorer_modules: tuple[str, ...] = ()  # module prefixes custom scorers may come from
    max_rate_qps: float = 2_000.0
    max_duration_s: float = 6 * 3600.0
    max_requests: int = 2_000_000

    def to_json(self) -> dict[str, Any]:
        return {"confine_dir": self.confine_dir, "allow_hosts": list(self.allow_hosts),
                "key_grants": {k: list(v) for k, v in self.key_grants.items()}, "scorer_modules": list(self.scorer_modules),
                "max_rate_qps": self.max_rate_qps, "max_duration_s": self.max_duration_s, "max_requests": self.max_requests}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Policy:
        return cls(confine_dir=data["confine_dir"], allow_hosts=tuple(data.get("allow_hosts") or ()),
                   key_grants={k: tuple(v) for k, v in (data.get("key_grants") or {}).items()},
                   scorer_modules=tuple(data.get("scorer_modules") or ()), max_rate_qps=data["max_rate_qps"],
                   max_duration_s=data["max_duration_s"], max_requests=data["max_requests"])


def parse_grant(text: str) -> tuple[str, tuple[str, ...]]:
    """'KEY_ENV=host[:port],host2' -> ('KEY_ENV', ('host[:port]', 'host2'))."""
    name, sep, hosts = text.partition("=")
    entries = tuple(h.strip().lower() for h in hosts.split(",") if h.strip())
    if not sep or not name.strip() or not entries or not name.strip().replace("_", "").isalnum():
        raise ValueError(f"expected KEY_ENV=host[:port][,host...], got {text!r}")
    return name.strip(), entries


def _host_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    return (parts.hostname or "").lower(), port if port is not None else (443 if parts.scheme == "https" else 80)


def host_allowed(url: str, allowed: tuple[str, ...]) -> bool:
    host, port = _host_port(url)
    if not host or port == -1:
        return False
    for entry in allowed:
        e_host, e_port = split_host(entry)
        if e_host == host and (not e_port or e_port == str(port)):
            return True
    return False


def split_host(entry: str) -> tuple[str, str]:
    """'host', 'host:port', '[v6]:port' or a bare IPv6 address -> (host, port or '')."""
    entry = entry.strip().lower()
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else ""
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host, port
    return entry, ""


def scan_yaml(text: str) -> None:
    """Refuse anchors/aliases (the expansion bomb) and deep nesting before anything is composed:
    PyYAML's event stream is read without recursion, so neither can take the process down."""
    depth = events = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            events += 1
            if events > MAX_YAML_EVENTS:
                raise ValueError(f"more than {MAX_YAML_EVENTS:,} YAML nodes")
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ValueError("YAML anchors and aliases (&name, *name) are not accepted in submitted scenarios")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise ValueError(f"YAML nested deeper than {MAX_YAML_DEPTH} levels")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}") from None


def _confined(path: str | None, base: Path, root: Path) -> bool:
    if path is None:
        return True
    resolved = (base / path).resolve()
    return resolved.is_relative_to(root)


def _custom_scorers(node: Any) -> list[str]:
    found = []
    if isinstance(node, dict):
        if node.get("type") == "custom":
            found.append(str(node.get("function")))
        for value in node.values():
            found += _custom_scorers(value)
    elif isinstance(node, list):
        for value in node:
            found += _custom_scorers(value)
    return found


def _endpoints(scenario: Any) -> list[tuple[str, str, str | None]]:
    """(field, base URL, API key variable) of everything the run will send requests to."""
    out = []
    for i, c in enumerate(scenario.candidates):
        out.append((f"candidates[{i}]", c.base_url or "http://127.0.0.1/v1", c.api_key_env))
    judge = scenario.scoring.judge
    if judge is not None:
        out.append(("scoring.judge", judge.base_url or "http://127.0.0.1/v1", judge.api_key_env))
    para = scenario.fidelity.paraphrase if scenario.fidelity is not None else None
    if para is not None:
        out.append(("fidelity.paraphrase", para.base_url or "http://127.0.0.1/v1", para.api_key_env))
    return out


def check_scenario(scenario: Any, scenario_dir: Path, policy: Policy, protected_env: tuple[str, ...] = ()) -> list[str]:
    """Every way the final scenario oversteps the policy (empty: it may run)."""
    problems: list[str] = []
    root = Path(policy.confine_dir).resolve()
    if not _confined(scenario.dataset, scenario_dir, root):
        problems.append("dataset: the file is outside the scenarios directory")
    trace = scenario.load.trace
    if trace is not None and not _confined(trace.path, scenario_dir, root):
        problems.append("load.trace.path: the file is outside the scenarios directory")
    allowed = (*LOOPBACK, *policy.allow_hosts)
    for i, c in enumerate(scenario.candidates):  # a metrics URL is a host the run reaches too
        url = c.server_metrics.url if c.server_metrics is not None else None
        if url and not host_allowed(url, allowed):
            problems.append(f"candidates[{i}].server_metrics: host {_host_port(url)[0] or url!r} is not among the "
                            "hosts this service may reach (loopback and --allow-host)")
    for where, url, key_env in _endpoints(scenario):
        host = _host_port(url)[0]
        if not host_allowed(url, allowed):
            problems.append(f"{where}.base_url: host {host or url!r} is not among the hosts this service may reach "
                            f"(loopback and --allow-host)")
        if key_env is None:
            continue
        if key_env in protected_env:
            problems.append(f"{where}.api_key_env: {key_env} is the service's own token and is never sent anywhere")
        elif key_env not in policy.key_grants:
            problems.append(f"{where}.api_key_env: {key_env} is not granted to runs (--allow-key {key_env}=HOST)")
        elif not host_allowed(url, policy.key_grants[key_env]):
            problems.append(f"{where}.api_key_env: {key_env} is granted for {', '.join(policy.key_grants[key_env])}, "
                            f"not for {host!r}")
    data = scenario.model_dump()
    for ref in _custom_scorers(data.get("scoring")):
        module = ref.partition(":")[0]
        if not any(module == p or module.startswith(p + ".") for p in policy.scorer_modules):
            problems.append(f"scoring: custom scorer {ref!r} runs code; allow its module with --allow-scorer-module")
    problems += check_bounds(scenario.load, policy)
    return problems


def check_bounds(load: Any, policy: Policy) -> list[str]:
    problems = []
    if load.rate_qps > policy.max_rate_qps:
        problems.append(f"load.rate_qps: {load.rate_qps:g} is above this service's limit of {policy.max_rate_qps:g}")
    for name in ("duration_s", "max_duration_s"):
        value = getattr(load, name, None)
        if value is not None and value > policy.max_duration_s:
            problems.append(f"load.{name}: {value:g} s is above this service's limit of {policy.max_duration_s:g} s")
    longest = max(x for x in (load.duration_s, getattr(load, "max_duration_s", None), 0.0) if x is not None)
    planned = max(x for x in (load.requests, getattr(load, "max_requests", None), 0) if x is not None)
    if load.mode == "open" and load.arrival != "trace":
        planned = max(planned, int(load.rate_qps * (longest + load.warmup_s)))
    if planned > policy.max_requests:
        problems.append(f"load: {planned:,} requests planned, above this service's limit of {policy.max_requests:,}")
    return problems


def key_variables(scenario: Any) -> list[str]:
    """The API key variables a scenario names."""
    return sorted({key_env for _, _, key_env in _endpoints(scenario) if key_env})


def child_environment(key_envs: list[str], policy: Policy, source: dict[str, str] | None = None) -> dict[str, str]:
    """A child run's environment: the basics, this copy of loadbench first on the path, and
    only the granted key variables its scenario names."""
    source = dict(os.environ) if source is None else source
    env = {k: source[k] for k in INHERITED_ENV if k in source}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    for key_env in key_envs:
        if key_env in policy.key_grants and key_env in source:
            env[key_env] = source[key_env]
    return env
