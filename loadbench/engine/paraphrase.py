"""Before the first request: ask the configured paraphraser for each `paraphrase` item once, so every
candidate is sent the same rewritten text."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import aiohttp
import orjson

from ..config.errors import ConfigError, Problem
from ..config.fidelity import Paraphraser
from ..drive.probe import describe_error
from ..plan.resolve import Resolved
from ..plan.variants import with_paraphrase


def _pending(resolved: Resolved) -> list[int]:
    return [i for i, item in enumerate(resolved.items)
            if item.metadata.get("paraphrase_source") is not None and not item.metadata.get("paraphrased")]


async def _ask(session: aiohttp.ClientSession, cfg: Paraphraser, url: str, headers: dict[str, str], text: str) -> str:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": cfg.prompt.replace("{text}", text)}],
                            "max_tokens": cfg.max_tokens, "temperature": 0, "stream": False}
    if cfg.model:
        body["model"] = cfg.model
    async with session.post(url, data=orjson.dumps(body), headers=headers, allow_redirects=False,
                            timeout=aiohttp.ClientTimeout(total=cfg.timeout_s)) as resp:
        raw = await resp.read()
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}")
    try:
        content = orjson.loads(raw)["choices"][0]["message"]["content"] or ""
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        raise ValueError("not a chat completion") from None
    content = content.strip()
    if not content:
        raise ValueError("an empty paraphrase")
    return content


async def paraphrase_items(resolved: Resolved, base_url: str | None, scenario_label: str) -> list[dict[str, Any]]:
    """Rewrite every pending item in place (resolved.items); the rows for paraphrases.jsonl.  A
    paraphraser that fails for any item stops the run before traffic: an item is never sent with
    its source text under the paraphrase variant's name."""
    fid = resolved.scenario.fidelity
    todo = _pending(resolved)
    if not todo or fid is None or fid.paraphrase is None:
        return []
    cfg = fid.paraphrase
    url = (base_url or cfg.base_url or "").rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json"}
    secret = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
    if cfg.api_key_env and not secret:
        raise ConfigError.single(scenario_label, f"environment variable {cfg.api_key_env} is not set",
                                 field="fidelity.paraphrase.api_key_env")
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    slots = asyncio.Semaphore(cfg.max_concurrency)
    rows: list[dict[str, Any]] = []
    failures: list[Problem] = []

    async def one(index: int, session: aiohttp.ClientSession) -> None:
        item = resolved.items[index]
        source = str(item.metadata["paraphrase_source"])
        async with slots:
            try:
                text = await _ask(session, cfg, url, headers, source)
            except (ValueError, TimeoutError, aiohttp.ClientError, OSError) as exc:
                reason = describe_error(exc) if not isinstance(exc, ValueError) else str(exc)
                failures.append(Problem(scenario_label, None, "fidelity.paraphrase",
                                        f"item {item.metadata.get('base_id')}: {reason.replace(secret, '[REDACTED]') if secret else reason}"))
                return
        resolved.items[index] = with_paraphrase(item, text, fid)
        rows.append({"item_id": item.metadata.get("base_id"), "source": source, "paraphrase": text})

    async with aiohttp.ClientSession(trust_env=False) as session:
        await asyncio.gather(*(one(i, session) for i in todo))
    if failures:
        raise ConfigError(failures[:10])
    return sorted(rows, key=lambda r: str(r["item_id"]))
