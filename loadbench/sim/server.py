"""The built-in simulated OpenAI-compatible endpoint (an aiohttp server on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from ..config.dataset import Item, load_dataset
from ..config.faults import FaultSpec
from ..config.profiles import PROFILES, Profile, with_params
from ..config.tokens import count_sim_tokens
from .faults import FaultPicker
from .metrics import SimMetrics
from .model import (
    PREFIX_BLOCK,
    answers_right,
    decode_step_s,
    filler_text,
    judge_reply,
    prefill_s,
    split_tokens,
    unit_draw,
    wrong_answer,
)
from .variants import PARAPHRASED, Asked, find, paraphrase_reply, parse
from .variants import answer as variant_answer


@dataclass(slots=True)
class Reply:
    pieces: list[str]
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    prompt_tokens: int
    cached_tokens: int = 0


class SimState:
    """Server-side state: the batch slots and the eval set the simulator can answer."""

    def __init__(self, profile: Profile, items: list[Item], seed: int, faults: FaultSpec | None = None) -> None:
        self.profile = profile
        self.seed = seed
        self.faults = FaultPicker(faults, seed) if faults is not None else None
        self.started = time.monotonic()
        self.slots = asyncio.Semaphore(profile.slots)
        self.active = 0
        self.by_prompt: dict[str, Item] = {}
        # Later turns of multi-turn items, by (first user message, this turn's user message).
        self.by_turn: dict[tuple[str, str], tuple[Item, int]] = {}
        for item in items:
            self.by_prompt.setdefault(item.last_user_text().strip(), item)
            self.by_prompt.setdefault(item.prompt_text().strip(), item)
            for turn, t in enumerate(item.turns or (), start=1):
                self.by_turn.setdefault((item.last_user_text().strip(), t.user.strip()), (item, turn))
        self.served = 0
        self._close: dict[str, Item | None] = {}  # noisy question -> its item (close-match cache)
        self.metrics = SimMetrics(f"sim-{profile.name}", profile.slots)
        self._prefix_cache: OrderedDict[int, None] = OrderedDict()

    @contextlib.asynccontextmanager
    async def admitted(self, held_tokens: int) -> AsyncIterator[None]:
        """A batch slot for one request: waiting until one is free, then running, holding KV memory."""
        metrics = self.metrics
        metrics.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            metrics.waiting -= 1
        self.active += 1
        metrics.running += 1
        metrics.kv_tokens += held_tokens
        try:
            yield
        finally:
            self.active -= 1
            metrics.running -= 1
            metrics.kv_tokens -= held_tokens
            self.slots.release()

    def lookup(self, body: dict[str, Any], chat: bool) -> tuple[Item | None, str, int]:
        """The eval item a request is about, the prompt text, and the user turn it is at."""
        if chat:
            messages = body.get("messages") or []
            prompt_all = " ".join(m.get("content") or "" for m in messages if isinstance(m.get("content"), str))
            users = [m.get("content") for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)]
            last_user = users[-1] if users else ""
            if len(users) > 1:
                found = self.by_turn.get((users[0].strip(), last_user.strip()))
                if found is not None:
                    return found[0], prompt_all, found[1]
            found = self.by_prompt.get(last_user.strip()) or self.by_prompt.get(last_user.strip().removeprefix(PARAPHRASED))
            return found, prompt_all, 0
        prompt = str(body.get("prompt") or "")
        return self.by_prompt.get(prompt.strip()), prompt, 0

    def cached_prefix_tokens(self, prompt: str) -> int:
        """Automatic prefix caching: leading blocks of tokens seen in an earlier prompt."""
        capacity = self.profile.prefix_cache_blocks
        if capacity <= 0:
            return 0
        tokens = split_tokens(prompt)
        cache = self._prefix_cache
        h = 0
        cached = 0
        hit = True
        for start in range(0, len(tokens) - PREFIX_BLOCK + 1, PREFIX_BLOCK):
            h = hash((h, *tokens[start : start + PREFIX_BLOCK]))
            if hit and h in cache:
                cached += PREFIX_BLOCK
                cache.move_to_end(h)
            else:
                hit = False
                cache[h] = None
        while len(cache) > capacity:
            cache.popitem(last=False)
        return cached

    def _variant_of(self, body: dict[str, Any], chat: bool) -> tuple[Item | None, Asked | None]:
        """A multiple-choice item rendered by a fidelity variant: the item and how it was asked."""
        if chat:
            users = [m.get("content") for m in body.get("messages") or [] if m.get("role") == "user" and isinstance(m.get("content"), str)]
            text = users[-1] if users else ""
        else:
            text = str(body.get("prompt") or "")
        asked = parse(text)
        if asked is None:
            return None, None
        return find(asked.question, self.by_prompt, self._close), asked

    def reply(self, body: dict[str, Any], chat: bool) -> Reply:
        item, prompt, turn = self.lookup(body, chat)
        asked = None
        if item is None or turn == 0:
            found, asked = self._variant_of(body, chat)
            if found is not None:
                item = found
        prompt_tokens = count_sim_tokens(prompt)
        cached = min(self.cached_prefix_tokens(prompt), prompt_tokens)
        graded = judge_reply(prompt, self.profile, self.seed) or paraphrase_reply(prompt) if item is None else None
        if graded is not None:
            return Reply(split_tokens(graded), None, "stop", prompt_tokens, cached)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        tools = body.get("tools") if chat else None
        calls = None
        if item is None:
            wanted = body.get("min_tokens") or (max_tokens if body.get("ignore_eos") else None)
            text = filler_text(int(wanted) if wanted else self.profile.filler_tokens, prompt[:200])
        elif item.is_agentic and tools:
            calls, text = self._agent_step(item, turn, body.get("messages") or [], prompt_tokens)
        else:
            key_id = (item.id or "") if turn == 0 else f"{item.id}#turn{turn}"
            right = answers_right(self.seed, self.profile, key_id, prompt_tokens)
            shaped = (variant_answer(item, asked, self.profile, right, f"{self.seed}:{self.profile.name}:{item.id}")
                      if asked is not None and item.choices else None)
            if shaped is not None:
                calls, text = None, shaped
            else:
                calls, text = self._item_answer(item.turn_item(turn), right, bool(tools))
        pieces = split_tokens(text)
        finish = "tool_calls" if calls else "stop"
        if max_tokens is not None and len(pieces) > int(max_tokens):
            pieces = pieces[: int(max_tokens)]
            finish = "length"
        return Reply(pieces, calls, finish, prompt_tokens, cached)

    def _agent_step(self, item: Item, turn: int, messages: list[dict[str, Any]],
                    prompt_tokens: int) -> tuple[list[dict[str, Any]] | None, str]:
        """An agent that works through the expected calls one per step, sometimes with wrong
        arguments, sometimes repeating a call that returned an error, sometimes never stopping."""
        last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        since = messages[last_user + 1 :]
        step = sum(1 for m in since if m.get("role") == "assistant")
        key = f"{self.seed}:{self.profile.name}:{item.id}:{turn}"
        right = answers_right(self.seed, self.profile, f"{item.id}#agent{turn}", prompt_tokens)
        expected = item.expected_tool_calls or []
        if not right and expected and unit_draw(key, "loop") < self.profile.agent_loop_share:
            return _tool_calls([expected[0]], True, key), ""  # stuck: the same lookup over and over
        last = since[-1] if since else None
        if last is not None and last.get("role") == "tool" and _is_error_result(str(last.get("content") or ""), item):
            previous = [m for m in since if m.get("role") == "assistant" and m.get("tool_calls")]
            if previous and unit_draw(key, "retry", step) < self.profile.agent_retry_p:
                fn = previous[-1]["tool_calls"][-1].get("function") or {}
                try:
                    args = orjson.loads(fn.get("arguments") or "{}")
                except orjson.JSONDecodeError:
                    args = {}
                return [{"name": fn.get("name") or "tool", "arguments": args}], ""
        done = sum(len(m.get("tool_calls") or []) for m in since if m.get("role") == "assistant")
        done -= sum(1 for m in since if m.get("role") == "tool" and _is_error_result(str(m.get("content") or ""), item))
        if 0 <= done < len(expected) and step < len(expected) + 2:
            victim = int(unit_draw(key, "victim") * len(expected))
            return _tool_calls([expected[done]], right or done != victim, f"{key}:{done}"), ""
        return self._item_answer(item, right, False)

    def _item_answer(self, item: Item, right: bool, has_tools: bool) -> tuple[list[dict[str, Any]] | None, str]:
        key = f"{self.seed}:{self.profile.name}:{item.id}"
        if has_tools and item.expected_tool_calls:
            return _tool_calls(item.expected_tool_calls, right, key), ""
        if has_tools and item.expect_no_tool_call and not right:
            tool = (item.request.tools or [{}])[0].get("function", {}).get("name", "lookup")
            return [{"name": tool, "arguments": {}}], ""
        target = item.target
        if isinstance(target, list):
            target = target[0] if target else ""
        if target is None:
            return None, filler_text(self.profile.filler_tokens, key)
        if right:
            return None, target
        authored = item.metadata.get("sim_wrong_answers")
        if isinstance(authored, list) and authored:
            return None, str(authored[int(unit_draw(key, "authored") * len(authored))])
        return None, wrong_answer(target, item.choices, key)


def _is_error_result(content: str, item: Item) -> bool:
    if item.default_tool_result is not None and content == item.default_tool_result:
        return True
    return '"error"' in content.lower()[:200] or content.lower().startswith("error")


def _tool_calls(expected: list[dict[str, Any]], right: bool, key: str) -> list[dict[str, Any]]:
    calls = []
    for _n, call in enumerate(expected):
        args = {}
        for name, accepted in (call.get("arguments") or {}).items():
            values = accepted if isinstance(accepted, list) else [accepted]
            chosen = next((v for v in values if v != ""), None)
            if chosen is not None:
                args[name] = chosen
        calls.append({"name": call.get("name", "tool"), "arguments": args})
    if not right and calls:
        r = unit_draw(key, "tool")
        victim = calls[int(r * len(calls))]
        if r < 0.4 and victim["arguments"]:
            arg = sorted(victim["arguments"])[0]
            value = victim["arguments"][arg]
            victim["arguments"][arg] = value + 1 if isinstance(value, (int, float)) and not isinstance(value, bool) else f"{value}?"
        elif r < 0.7 and victim["arguments"]:
            victim["arguments"].pop(sorted(victim["arguments"])[-1])
        elif len(calls) > 1:
            calls.pop()
        else:
            victim["name"] = victim["name"] + "_v2"
    return calls


def _tool_call_payload(calls: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "id": f"call_{key}_{i}",
            "type": "function",
            "function": {"name": c["name"], "arguments": orjson.dumps(c["arguments"]).decode()},
        }
        for i, c in enumerate(calls)
    ]


def _sse(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


SIM_STATE: web.AppKey[SimState] = web.AppKey("sim_state", SimState)


def build_app(profile: Profile, items: list[Item], seed: int = 0, faults: FaultSpec | None = None) -> web.Application:
    state = SimState(profile, items, seed, faults)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[SIM_STATE] = state
    created = int(time.time())

    async def models(_request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": f"sim-{profile.name}", "object": "model", "created": created, "owned_by": "loadbench"}]}
        )

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=state.metrics.exposition(), content_type="text/plain", charset="utf-8")

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "profile": profile.name, "served": state.served})

    async def complete(request: web.Request, chat: bool) -> web.StreamResponse:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.json_response({"error": {"message": "request body is not JSON", "type": "invalid_request_error"}}, status=400)
        if not isinstance(body, dict) or (chat and not isinstance(body.get("messages"), list)):
            return web.json_response({"error": {"message": "messages must be a list", "type": "invalid_request_error"}}, status=400)
        reply = state.reply(body, chat)
        model = body.get("model") or f"sim-{profile.name}"
        rid = f"cmpl-sim-{state.served}"
        request_no = state.served
        state.served += 1
        stream = bool(body.get("stream"))
        fault = state.faults.pick(request_no, time.monotonic() - state.started) if state.faults is not None else None
        if fault is not None:
            early = await _fault_response(fault, state.faults.spec, request, stream)  # type: ignore[union-attr]
            if early is not None:
                return early
        usage = {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": len(reply.pieces) + sum(len(split_tokens(orjson.dumps(c["arguments"]).decode())) for c in reply.tool_calls or []),
            "total_tokens": 0,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        obj_kind = "chat.completion" if chat else "text_completion"

        admitted_at = time.monotonic()
        async with state.admitted(usage["total_tokens"]):
            await asyncio.sleep(prefill_s(profile, reply.prompt_tokens - reply.cached_tokens))
            if not stream:
                for _ in range(max(len(reply.pieces) - 1, 0)):
                    await asyncio.sleep(decode_step_s(profile, state.active))
                text = "".join(reply.pieces)
                if chat:
                    message: dict[str, Any] = {"role": "assistant", "content": text or None}
                    if reply.tool_calls:
                        message["tool_calls"] = [
                            {k: v for k, v in c.items() if k != "index"} for c in _tool_call_payload(reply.tool_calls, rid)
                        ]
                    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": reply.finish_reason}
                else:
                    choice = {"index": 0, "text": text, "finish_reason": reply.finish_reason}
                state.metrics.finished(usage["prompt_tokens"], usage["completion_tokens"], reply.finish_reason,
                                       time.monotonic() - admitted_at)
                return web.json_response(
                    {"id": rid, "object": obj_kind, "created": created, "model": model, "choices": [choice], "usage": usage},
                    dumps=lambda o: orjson.dumps(o).decode(),
                )
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            await resp.prepare(request)
            base = {"id": rid, "object": f"{obj_kind}.chunk", "created": created, "model": model}
            if chat:  # the role-only prelude real servers send before any output
                await resp.write(_sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}))
            if reply.tool_calls:
                for call in _tool_call_payload(reply.tool_calls, rid):
                    await resp.write(_sse({**base, "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}))
                    await asyncio.sleep(decode_step_s(profile, state.active))
            for i, piece in enumerate(reply.pieces):
                if i:
                    await asyncio.sleep(decode_step_s(profile, state.active))
                delta = {"index": 0, "delta": {"content": piece}, "finish_reason": None} if chat else {"index": 0, "text": piece, "finish_reason": None}
                await resp.write(_sse({**base, "choices": [delta]}))
                if fault is not None and i == 0:
                    if fault == "reset":
                        request.transport.abort()  # type: ignore[union-attr]
                        return resp
                    if fault == "truncate":
                        await resp.write_eof()
                        return resp
                    if fault == "malformed":
                        await resp.write(b'data: {"choices": [{"delta": {"content": "x"}\n\n')
            end = {"index": 0, "delta": {}, "finish_reason": reply.finish_reason} if chat else {"index": 0, "text": "", "finish_reason": reply.finish_reason}
            await resp.write(_sse({**base, "choices": [end]}))
            if (body.get("stream_options") or {}).get("include_usage"):
                await resp.write(_sse({**base, "choices": [], "usage": usage}))
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            state.metrics.finished(usage["prompt_tokens"], usage["completion_tokens"], reply.finish_reason,
                                   time.monotonic() - admitted_at)
            return resp

    async def chat(request: web.Request) -> web.StreamResponse:
        return await complete(request, True)

    async def completions(request: web.Request) -> web.StreamResponse:
        return await complete(request, False)

    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completions)
    return app


async def _fault_response(fault: str, spec: FaultSpec, request: web.Request, stream: bool) -> web.StreamResponse | None:
    """Faults that replace the whole answer; None for those injected mid-stream."""
    if fault == "http_5xx":
        return web.json_response({"error": {"message": "simulated overload", "type": "server_error"}}, status=503)
    if fault == "http_429":
        return web.json_response({"error": {"message": "simulated rate limit", "type": "rate_limit"}}, status=429,
                                 headers={"Retry-After": "1"})
    if fault == "stall":
        await asyncio.sleep(spec.stall_s)
        return web.json_response({"error": {"message": "stalled"}}, status=504)
    if fault == "wrong_content_type":
        return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
    if fault == "oversized":
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        chunk = b" " * 65536
        sent = 0
        await resp.write(b'{"choices": [{"message": {"content": "')
        while sent < spec.oversize_bytes:
            await resp.write(chunk)
            sent += len(chunk)
        await resp.write(b'"}}]}')
        await resp.write_eof()
        return resp
    if fault == "slow_drip":
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream" if stream else "application/json"})
        await resp.prepare(request)
        for byte in b'data: {"choices": [{"delta": {"content": "slow"}}]}\n\n' * 50:
            await resp.write(bytes([byte]))
            await asyncio.sleep(spec.drip_interval_s)
        await resp.write_eof()
        return resp
    if fault == "no_length_close":
        transport = request.transport
        if transport is not None:
            transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
                            b'{"choices": [{"message": {"content": "cut sh')
            transport.close()
        return web.Response(status=200)  # never sent: the connection is gone
    return None


def load_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise KeyError(name)
    return PROFILES[name]


async def serve(profile_name: str, port: int, dataset: Path | None, seed: int, host: str = "127.0.0.1",
                parent_pid: int | None = None, params: dict[str, float | int] | None = None,
                faults: dict[str, Any] | None = None) -> None:
    """Run until cancelled (or until `parent_pid` is gone); prints one JSON line with the
    bound port once listening."""
    profile = load_profile(profile_name)
    if params:
        profile = with_params(profile, params)
    items = load_dataset(dataset) if dataset else []
    app = build_app(profile, items, seed, FaultSpec.model_validate(faults) if faults else None)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base_url = f"http://{host}:{bound}/v1"
    # stdout: one JSON line for the processes that start us; stderr: what a person needs
    print(orjson.dumps({"port": bound, "profile": profile.name, "items": len(items), "base_url": base_url}).decode(), flush=True)
    if parent_pid is None:
        print(f"loadbench sim: profile {profile.name} at {base_url} (use it as a candidate's base_url; Ctrl-C stops it)",
              file=sys.stderr, flush=True)
    try:
        if parent_pid is None:
            await asyncio.Event().wait()
        else:
            # A driver killed with SIGKILL cannot stop us: notice that it is gone and exit.
            while _alive(parent_pid) and os.getppid() == parent_pid:
                await asyncio.sleep(0.5)
    finally:
        await runner.cleanup()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
