"""Scenario files: YAML, validated by pydantic, every error reported with file, line and field."""

from __future__ import annotations

import difflib
import os
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError, Problem, format_loc
from .faults import FaultSpec
from .fidelity import Fidelity
from .server_metrics import ServerMetrics


def _check_url(v: str | None) -> str | None:
    if v is not None and not v.startswith(("http://", "https://")):
        raise ValueError("base_url must start with http:// or https://")
    return v.rstrip("/") if v else v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pricing(_Strict):
    """USD per million tokens; `replica_hour` prices a self-hosted replica."""

    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)
    cached_input_per_mtok: float | None = Field(None, ge=0)
    replica_hour: float | None = Field(None, ge=0)


class Retry(_Strict):
    """Retries hide errors, so they are off (max_attempts 1) unless asked for; when on, they are
    counted apart and latency is still measured from the first intended send."""

    max_attempts: int = Field(1, ge=1, le=10)
    on_errors: list[Literal["connect", "timeout", "http_429", "http_5xx", "disconnected", "stream_truncated", "invalid_response"]] = Field(
        default_factory=lambda: ["http_429", "http_5xx", "connect"])
    backoff_s: float = Field(0.2, ge=0)
    max_backoff_s: float = Field(10.0, ge=0)
    respect_retry_after: bool = True


class Candidate(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    sim: str | None = None
    sim_params: dict[str, float | int] = Field(default_factory=dict)  # override a simulator profile's numbers
    sim_faults: FaultSpec | None = None  # fault injection in the simulator (rates or schedules per fault)
    max_response_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    retry: Retry = Field(default_factory=Retry)
    base_url: str | None = None
    model: str | None = None
    api: Literal["chat", "completions"] = "chat"
    api_key_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    stream: bool = True
    request: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float = Field(60.0, gt=0, le=3600)
    max_in_flight: int = Field(512, ge=1, le=100_000)
    pricing: Pricing = Field(default_factory=Pricing)
    insecure: bool = False
    # fast: loadbench's lean HTTP/1.1 client (keep-alive, llhttp parser); aiohttp: aiohttp's client
    http_client: Literal["fast", "aiohttp"] = "fast"
    server_metrics: ServerMetrics | None = None  # the deployment's own /metrics, scraped during the run
    public_scores: dict[str, float] = Field(default_factory=dict)  # e.g. {mmlu: 78.1}, read off a model card

    @model_validator(mode="after")
    def _endpoint(self) -> Candidate:
        if self.sim is None and not self.base_url:
            raise ValueError("give either base_url (a deployment) or sim (a built-in simulator profile)")
        if self.sim is not None and self.base_url:
            raise ValueError("give base_url or sim, not both")
        return self

    _url = field_validator("base_url")(classmethod(lambda cls, v: _check_url(v)))
    _no_scrape = field_validator("server_metrics", mode="before")(classmethod(lambda cls, v: None if v is False else v))
    _headers = field_validator("headers")(classmethod(lambda cls, v: _check_headers(v)))


class ThinkTimeConfig(_Strict):
    """Seconds between a reply and the user's next turn in a multi-turn session."""

    dist: Literal["fixed", "uniform", "exponential", "lognormal"] = "exponential"
    mean_s: float = Field(1.0, ge=0, le=3600)
    min_s: float = Field(0.0, ge=0)
    max_s: float | None = Field(None, ge=0, le=3600)
    sigma: float = Field(0.5, gt=0, le=5)


TRACE_PRESETS: dict[str, dict[str, Any]] = {
    # Mooncake (Kimi) traces: JSONL, timestamp in ms, token lengths.
    "mooncake": {"timestamp_field": "timestamp", "timestamp_unit": "ms", "input_tokens_field": "input_length",
                 "output_tokens_field": "output_length"},
    # Azure LLM inference traces (2023/2024): CSV, ISO timestamps, token lengths.
    "azure": {"timestamp_field": "TIMESTAMP", "timestamp_unit": "iso", "input_tokens_field": "ContextTokens",
              "output_tokens_field": "GeneratedTokens"},
    # BurstGPT: CSV, seconds from the trace start, token lengths.
    "burstgpt": {"timestamp_field": "Timestamp", "timestamp_unit": "s", "input_tokens_field": "Request tokens",
                 "output_tokens_field": "Response tokens"},
}


class TraceConfig(_Strict):
    """Replay a production trace: intended times from its timestamps, requests from its rows."""

    path: str
    preset: Literal["mooncake", "azure", "burstgpt"] | None = None
    timestamp_field: str | None = None
    timestamp_unit: Literal["s", "ms", "us", "ns", "iso"] | None = None
    time_scale: float = Field(1.0, gt=0, le=10_000)  # speed-up: 2 replays twice as fast
    item_field: str | None = None  # the id of a dataset item
    request_field: str | None = None  # a full request: a prompt string or a messages list
    input_tokens_field: str | None = None  # token lengths: synthetic prompts of that size
    output_tokens_field: str | None = None
    fixed_output: bool = True  # ask for exactly the trace's output length (min_tokens, ignore_eos)
    max_rows: int | None = Field(None, ge=1, le=10_000_000)

    @model_validator(mode="after")
    def _fields(self) -> TraceConfig:
        preset = TRACE_PRESETS.get(self.preset or "", {})
        for key, value in preset.items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.timestamp_field is None:
            self.timestamp_field = "timestamp"
        if self.timestamp_unit is None:
            self.timestamp_unit = "s"
        given = [f for f in ("item_field", "request_field", "input_tokens_field") if getattr(self, f)]
        if len(given) != 1:
            raise ValueError("say what each row sends with exactly one of item_field (dataset ids), request_field "
                             "(full requests) or input_tokens_field (synthetic prompts of that many tokens)")
        return self


class Load(_Strict):
    arrival: Literal["constant", "poisson", "gamma", "trace"] = "poisson"
    rate_qps: float = Field(1.0, gt=0, le=100_000)
    burstiness: float = Field(1.0, gt=0)
    duration_s: float | None = Field(None, gt=0, le=7 * 24 * 3600)
    requests: int | None = Field(None, ge=1, le=100_000_000)
    warmup_s: float = Field(0.0, ge=0)
    seed: int = 0
    mode: Literal["open", "closed"] = "open"
    concurrency: int | None = Field(None, ge=1, le=100_000)
    on_saturation: Literal["queue", "drop"] = "queue"
    grace_s: float = Field(10.0, ge=0, le=3600)
    think_time_s: Annotated[float, Field(ge=0, le=3600)] | ThinkTimeConfig = 0.0  # between turns of sessions
    trace: TraceConfig | None = None
    shared_prefix_tokens: int = Field(0, ge=0, le=1_000_000)  # one system prompt shared by every request
    # Run until every SLO clause is decided (docs/slo.md): duration_s / requests is then the
    # least that runs before the first look, max_duration_s / max_requests the cap.
    until_decided: bool = False
    max_duration_s: float | None = Field(None, gt=0, le=7 * 24 * 3600)
    max_requests: int | None = Field(None, ge=1, le=100_000_000)
    check_interval_s: float = Field(5.0, gt=0, le=3600)
    confidence: float = Field(0.95, ge=0.5, lt=1)  # of every SLO verdict (overall, across the looks)

    @model_validator(mode="after")
    def _bounds(self) -> Load:
        if self.until_decided:
            if self.mode != "open" or self.arrival == "trace":
                raise ValueError("until_decided needs an open-loop run with a synthetic arrival process (not closed mode or a trace)")
            if (self.max_duration_s is None) == (self.max_requests is None):
                raise ValueError("until_decided needs exactly one cap: max_duration_s or max_requests")
            if self.duration_s is not None and self.requests is not None:
                raise ValueError("give duration_s or requests, not both")
            least_s = self.duration_s if self.duration_s is not None else (self.requests or 0) / self.rate_qps
            cap_s = self.max_duration_s if self.max_duration_s is not None else (self.max_requests or 0) / self.rate_qps
            if least_s > cap_s:
                raise ValueError("until_decided: duration_s / requests (the least before the first look) exceeds the cap")
            return self
        if self.max_duration_s is not None or self.max_requests is not None:
            raise ValueError("max_duration_s / max_requests cap a run with until_decided: true; set it, or use duration_s / requests")
        if self.arrival == "trace" or self.trace is not None:
            if self.trace is None:
                raise ValueError("arrival: trace needs a trace: section (path and fields)")
            if self.arrival != "trace":
                raise ValueError("a trace: section needs arrival: trace (the trace gives the intended times)")
            if self.mode == "closed":
                raise ValueError("trace replay is open loop; mode: closed does not apply")
            return self
        if self.duration_s is None and self.requests is None and not self.until_decided:
            raise ValueError("give duration_s or requests (every run is bounded)")
        if self.duration_s is not None and self.requests is not None:
            raise ValueError("give duration_s or requests, not both")
        if self.mode == "closed" and self.concurrency is None:
            raise ValueError("closed mode needs concurrency (the number of users)")
        return self


def _check_headers(headers: dict[str, str]) -> dict[str, str]:
    for key, value in headers.items():
        if key.lower() in ("authorization", "api-key", "x-api-key"):
            raise ValueError(f"header {key!r} would put a secret in the scenario file; use api_key_env")
        if not key or any(c in key for c in ":\r\n\0 ") or any(c in value for c in "\r\n\0"):
            raise ValueError(f"header {key!r}: names cannot be empty or hold ':', spaces or line breaks, values cannot hold line breaks")
    return headers


class JudgeConfig(_Strict):
    """The LLM judge: its own endpoint, pool, concurrency and rate budget."""

    sim: str | None = None
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(60.0, gt=0, le=3600)
    max_concurrency: int = Field(8, ge=1, le=1024)
    rate_qps: float | None = Field(None, gt=0)
    max_tokens: int = Field(512, ge=16)
    allow_self_judge: bool = False
    pricing: Pricing = Field(default_factory=Pricing)

    _headers = field_validator("headers")(classmethod(lambda cls, v: _check_headers(v)))

    @model_validator(mode="after")
    def _endpoint(self) -> JudgeConfig:
        if (self.sim is None) == (self.base_url is None):
            raise ValueError("give the judge either base_url or sim")
        return self

    _url = field_validator("base_url")(classmethod(lambda cls, v: _check_url(v)))


class Scoring(_Strict):
    default_assert: list[dict[str, Any] | str] = Field(default_factory=list)
    judge: JudgeConfig | None = None


class Validity(_Strict):
    """When a run is declared invalid because the driver, not the server, was the bottleneck."""

    max_schedule_lag_p99_s: float = Field(0.010, gt=0)
    max_event_loop_lag_p99_s: float = Field(0.020, gt=0)
    min_achieved_ratio: float = Field(0.99, gt=0, le=1)
    max_loop_cpu_ratio: float = Field(0.90, gt=0)
    allow_drops: bool = False
    # Raise the lag limits to 10% of the tightest latency SLO bound and count late requests
    # against what could move a verdict (docs/slo.md).  Default: on, unless a lag limit is set here.
    proportional: bool | None = None

    def limits(self) -> dict[str, Any]:
        """The limits with `proportional` resolved (what run.json records)."""
        data = self.model_dump()
        if self.proportional is None:
            data["proportional"] = not ({"max_schedule_lag_p99_s", "max_event_loop_lag_p99_s"} & self.model_fields_set)
        return data


class Decision(_Strict):
    objective: Literal["cost_per_correct", "cost_per_task", "accuracy", "latency_p95", "goodput"] = "cost_per_correct"


class AbortRule(_Strict):
    """Stop the run early (k6's abortOnFail idea) when a candidate's recent error ratio is too high."""

    metric: Literal["error_ratio", "drop_ratio"] = "error_ratio"
    above: float = Field(gt=0, le=1)
    window_s: float = Field(10.0, gt=0)
    min_requests: int = Field(20, ge=1)
    candidate: str | None = None


class Output(_Strict):
    dir: str = "runs"
    store_text: bool = True


class Scenario(_Strict):
    name: str | None = None
    description: str | None = None
    dataset: str | None = None
    candidates: list[Candidate] = Field(min_length=1)
    load: Load
    scoring: Scoring = Field(default_factory=Scoring)
    slo: list[str] = Field(default_factory=list)
    validity: Validity = Field(default_factory=Validity)
    decision: Decision = Field(default_factory=Decision)
    abort_on: list[AbortRule] = Field(default_factory=list)
    output: Output = Field(default_factory=Output)
    fidelity: Fidelity | None = None  # format variants and contamination probes (docs/fidelity.md)

    @field_validator("slo")
    @classmethod
    def _slo_clauses(cls, clauses: list[str]) -> list[str]:
        from .slo_clauses import parse_clause

        problems = []
        for i, text in enumerate(clauses):
            try:
                parse_clause(text)
            except ValueError as exc:
                problems.append(f"[{i}] {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return clauses

    @field_validator("candidates")
    @classmethod
    def _unique_names(cls, candidates: list[Candidate]) -> list[Candidate]:
        seen: set[str] = set()
        for c in candidates:
            if c.name in seen:
                raise ValueError(f"candidate name {c.name!r} is used twice")
            seen.add(c.name)
        return candidates

    @model_validator(mode="after")
    def _dataset_needed(self) -> Scenario:
        trace = self.load.trace
        if self.dataset is None and (trace is None or trace.item_field):
            raise ValueError("dataset: required key is missing (the eval set to replay)" if trace is None else
                             "dataset: required key is missing (the trace's item_field names items of a dataset)")
        return self

    @model_validator(mode="after")
    def _decidable(self) -> Scenario:
        if self.load.until_decided and not self.slo:
            raise ValueError("load.until_decided runs until the SLO clauses are decided: give an slo: list")
        return self

    @model_validator(mode="after")
    def _judge_is_not_a_candidate(self) -> Scenario:
        judge = self.scoring.judge
        if judge is None or judge.allow_self_judge:
            return self
        for c in self.candidates:
            same_sim = judge.sim is not None and judge.sim == c.sim
            same_api = judge.base_url is not None and judge.base_url == c.base_url and judge.model == c.model
            if same_sim or same_api:
                raise ValueError(f"the judge is candidate {c.name!r} itself; a model grading its own answers is biased "
                                 "(set scoring.judge.allow_self_judge: true to allow it)")
        return self


def request_headers(extra: dict[str, str], secret: str | None) -> dict[str, str]:
    """JSON request headers: the scenario's own, plus the bearer token from the named variable."""
    headers = {"Content-Type": "application/json", **extra}
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    return headers


def endpoint_url(base_url: str, api: str) -> str:
    """The request URL of a candidate's API under its base URL."""
    return base_url.rstrip("/") + ("/chat/completions" if api == "chat" else "/completions")


# ---------------------------------------------------------------------------- loading


def _node_at(root: yaml.Node | None, loc: tuple[int | str, ...]) -> tuple[yaml.Node | None, bool]:
    """The YAML node a validation location points at, and whether it was found exactly."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == part:
                    node = value
                    break
            else:
                return node, False
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            return node, False
    return node, True


def _key_node(root: yaml.Node | None, loc: tuple[int | str, ...]) -> yaml.Node | None:
    parent, found = _node_at(root, loc[:-1])
    if found and isinstance(parent, yaml.MappingNode):
        for key, _ in parent.value:
            if key.value == loc[-1]:
                return key
    return None


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    model: Any = Scenario
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        model = _unwrap(model.model_fields[part].annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (list, Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                return _unwrap(arg)
    return annotation


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    parent = _model_at(loc[:-1])
    if parent is None:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(parent.model_fields), n=1, cutoff=0.6)
    known = ", ".join(parent.model_fields)
    return f" (did you mean {close[0]!r}?)" if close else f" (known keys: {known})"


def problems_from_validation(path: str, root: yaml.Node | None, err: ValidationError) -> list[Problem]:
    problems = []
    for e in err.errors():
        loc = tuple(e["loc"])
        line = None
        if e["type"] == "extra_forbidden":
            key = _key_node(root, loc)
            line = key.start_mark.line + 1 if key is not None else None
            msg = f"unknown key{_did_you_mean(loc)}"
        else:
            node, _ = _node_at(root, loc)
            line = node.start_mark.line + 1 if node is not None else None
            msg = e["msg"].removeprefix("Value error, ")
            head, sep, rest = msg.partition(": ")
            if not loc and sep and head in Scenario.model_fields:  # a whole-scenario check about one key
                loc, msg = (head,), rest
            if e["type"] == "missing":
                msg = "required key is missing"
            elif e["type"] == "literal_error":
                msg = f"{msg}, got {e.get('input')!r}"
        problems.append(Problem(path, line, format_loc(loc), msg))
    return problems


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError.single("--set", f"expected dotted.path=value, got {text!r}")
    path, _, raw = text.partition("=")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return path.strip().split("."), value


def apply_override(data: dict[str, Any], path: list[str], value: Any) -> None:
    """Set a dotted path in the raw scenario; list elements by index or by `name`."""
    node: Any = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            idx = None
            if part.isdigit() and int(part) < len(node):
                idx = int(part)
            else:
                idx = next((j for j, el in enumerate(node) if isinstance(el, dict) and el.get("name") == part), None)
            if idx is None:
                raise ConfigError.single("--set", f"{'.'.join(path)}: no list element {part!r}")
            if last:
                node[idx] = value
            else:
                node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError.single("--set", f"{'.'.join(path)}: {part!r} is not inside a mapping or list")


def load_scenario(path: str | os.PathLike[str], overrides: list[str] = ()) -> tuple[Scenario, Path]:
    """Read, override and validate a scenario.  Returns it and its directory (for relative paths)."""
    p = Path(path)
    shown = str(path)
    try:
        raw_bytes = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError.single(shown, "scenario file not found") from None
    except OSError as exc:
        raise ConfigError.single(shown, f"cannot read scenario file: {exc.strerror}") from None
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw_bytes[: exc.start].count(b"\n") + 1
        raise ConfigError.single(shown, "not valid UTF-8", line=line) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError.single(shown, f"YAML syntax error: {problem}", line=line) from None
    if not isinstance(data, dict):
        raise ConfigError.single(shown, "a scenario must be a YAML mapping (key: value lines)", line=1)
    for text_override in overrides:
        keys, value = parse_override(text_override)
        apply_override(data, keys, value)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        problems = problems_from_validation(shown, root, err)
        raise ConfigError([_blame_override(problem, overrides) for problem in problems]) from None
    return scenario, p.resolve().parent


def _blame_override(problem: Problem, overrides: list[str] | tuple[str, ...]) -> Problem:
    """A problem in a field a --set flag wrote is the flag's, not the file's."""
    for text in overrides:
        path = ".".join(parse_override(text)[0])
        if problem.field == path or problem.field.startswith((path + ".", path + "[")):
            return Problem(f"--set {text}", None, problem.field, problem.message)
    return problem
