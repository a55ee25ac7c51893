"""Per-candidate lanes: HTTP sessions, pre-built payloads, send functions with retries, sessions."""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

from ..config.dataset import Item
from ..config.profiles import PROFILES
from ..config.scenario import Candidate, Retry, Scenario, endpoint_url, request_headers
from ..pacing.clock import Clock
from ..pacing.records import ERROR, RequestResult, reset_for_retry
from ..pacing.runner import Lane
from ..plan.workload import first_messages, first_prompt, shared_prefix
from .aiohttp_transport import AiohttpTransport
from .client import ClientSettings, OpenAIClient, build_payload
from .conversation import ConversationDriver, ThinkTime, prompt_chars
from .http1 import Http1Pool

if TYPE_CHECKING:
    from ..plan.resolve import Resolved


def candidate_headers(cand: Candidate, secret: str | None) -> dict[str, str]:
    return request_headers(cand.headers, secret)


PREWARM_MAX = 64
PREWARM_TIMEOUT_S = 5.0


def prewarm_count(scenario: Scenario, cand: Candidate) -> int:
    """Connections to open before the first send: a stall of ~50 ms at the offered rate.
    Without them, the requests that fall due during a short stall each open a connection
    on the sending loop, which prolongs the stall (seen as bursts of late sends)."""
    load = scenario.load
    wanted = load.concurrency or 1 if load.mode == "closed" else math.ceil(load.rate_qps * 0.05)
    return max(1, min(cand.max_in_flight, PREWARM_MAX, wanted))


async def prewarm_lanes(resolved: Resolved, transports: list[Http1Pool | AiohttpTransport]) -> None:
    scenario = resolved.scenario
    await asyncio.gather(*(t.prewarm(prewarm_count(scenario, cand)) for cand, t in zip(scenario.candidates, transports)))


def think_time(scenario: Scenario) -> ThinkTime:
    think = scenario.load.think_time_s
    return ThinkTime("fixed", float(think)) if isinstance(think, (int, float)) else ThinkTime(**think.model_dump())


def build_lanes(resolved: Resolved, base_urls: dict[str, str], clock: Clock) -> tuple[list[Lane], list[Http1Pool | AiohttpTransport]]:
    """One lane per candidate, each with its own connection pool; the caller closes the transports.
    Must run inside the event loop that will send."""
    scenario = resolved.scenario
    prefix = shared_prefix(scenario.load.shared_prefix_tokens)
    has_sessions = any(item.is_session for item in resolved.items)
    lanes: list[Lane] = []
    transports: list[Http1Pool | AiohttpTransport] = []
    for cand in scenario.candidates:
        secret = resolved.secrets.get(cand.name)
        pricing = cand.pricing
        if cand.sim is not None and pricing.input_per_mtok == 0 and pricing.output_per_mtok == 0:
            prof = PROFILES[cand.sim]
            pricing = pricing.model_copy(update={
                "input_per_mtok": prof.input_per_mtok, "output_per_mtok": prof.output_per_mtok,
                "cached_input_per_mtok": prof.cached_input_per_mtok,
            })
        settings = ClientSettings(
            url=endpoint_url(base_urls[cand.name], cand.api), api=cand.api, stream=cand.stream,
            timeout_s=cand.timeout_s, headers=candidate_headers(cand, secret), input_per_mtok=pricing.input_per_mtok,
            output_per_mtok=pricing.output_per_mtok, cached_input_per_mtok=pricing.cached_input_per_mtok,
            secret=secret, max_response_bytes=cand.max_response_bytes,
        )
        transport: Http1Pool | AiohttpTransport
        if cand.http_client == "fast":
            transport = Http1Pool(settings.url, settings.headers, limit=cand.max_in_flight, verify_tls=not cand.insecure,
                                  max_body_bytes=cand.max_response_bytes)
        else:
            transport = AiohttpTransport(settings.url, settings.headers, limit=cand.max_in_flight,
                                         verify_tls=not cand.insecure, max_body_bytes=cand.max_response_bytes,
                                         models_url=base_urls[cand.name].rstrip("/") + "/models")
        transports.append(transport)
        client = OpenAIClient(transport, settings, clock)
        model = cand.model or (f"sim-{cand.sim}" if cand.sim else None)
        params = [candidate_params(cand, item) for item in resolved.items]
        payloads = [
            build_payload(api=cand.api, model=model, stream=cand.stream, messages=first_messages(item, prefix),
                          prompt=first_prompt(item, prefix), params=dict(params[i]))
            for i, item in enumerate(resolved.items)
        ]
        chars = [len(first_prompt(item, prefix)) for item in resolved.items]
        driver = None
        follow_payload = None
        if has_sessions:
            driver = ConversationDriver(resolved.items, [first_messages(item, prefix) for item in resolved.items],
                                        think_time(scenario), scenario.load.seed)
            follow_payload = _session_payloads(driver, cand, model, params)
        lanes.append(Lane(cand.name, _make_send(client, payloads, chars, cand.retry, follow_payload),
                          cand.max_in_flight, follow_up=driver.follow_up if driver is not None else None))
    return lanes, transports


def candidate_params(cand: Candidate, item: Item) -> dict[str, Any]:
    params = dict(cand.request)
    params.update(item.request.model_dump(exclude_none=True))
    return params



def _session_payloads(driver: ConversationDriver, cand: Candidate, model: str | None, params: list[dict[str, Any]]):
    """Payloads of a session's later requests: the conversation so far, the item's parameters."""

    def payload(r: RequestResult) -> tuple[bytes, int]:
        messages = driver.messages(r.seq)
        body = build_payload(api="chat", model=model, stream=cand.stream, messages=messages, prompt="",
                             params=dict(params[r.item_index]))
        return body, prompt_chars(messages)

    return payload


def _make_send(client: OpenAIClient, payloads: list[bytes], prompt_chars: list[int], retry: Retry,
               follow_payload: Any = None):
    send = client.send
    if retry.max_attempts <= 1 and follow_payload is None:
        async def lane_send(item_index: int, r: RequestResult, t0_ns: int) -> None:
            await send(payloads[item_index], prompt_chars[item_index], r, t0_ns)

        return lane_send
    retry_on = frozenset(retry.on_errors)

    async def lane_send_with_retries(item_index: int, r: RequestResult, t0_ns: int) -> None:
        if r.step and follow_payload is not None:
            payload, chars = follow_payload(r)
        else:
            payload, chars = payloads[item_index], prompt_chars[item_index]
        await send(payload, chars, r, t0_ns)
        first_sent = r.sent_ns
        attempt = 1
        while r.status == ERROR and r.error_class in retry_on and attempt < retry.max_attempts:
            delay = retry.backoff_s * 2 ** (attempt - 1)
            if retry.respect_retry_after and r.retry_after_s:
                delay = max(delay, r.retry_after_s)
            await asyncio.sleep(min(delay, retry.max_backoff_s))
            reset_for_retry(r)
            await send(payload, chars, r, t0_ns)
            attempt += 1
        r.retries = attempt - 1
        r.sent_ns = first_sent  # schedule lag is the first attempt's; latency stays from the intended time

    return lane_send_with_retries


