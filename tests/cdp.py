"""A headless Chromium driven over the DevTools protocol: navigate, fill a form, read the DOM,
collect console messages (CSP violations land there).  Only what the service tests need."""

from __future__ import annotations

import asyncio
import itertools
import re
import subprocess
from pathlib import Path
from typing import Any

import aiohttp


class Browser:
    def __init__(self, chromium: str, profile: Path) -> None:
        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.ws_url = self._devtools_url()
        self._ids = itertools.count(1)
        self.console: list[str] = []

    def _devtools_url(self) -> str:
        assert self.proc.stderr is not None
        for _ in range(200):
            line = self.proc.stderr.readline()
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                return m.group(1)
            if not line and self.proc.poll() is not None:
                break
        raise AssertionError("chromium did not open its DevTools endpoint")

    async def __aenter__(self) -> Browser:
        self._http = aiohttp.ClientSession()
        self.ws = await self._http.ws_connect(self.ws_url, max_msg_size=64 << 20)
        target = await self.call("Target.createTarget", url="about:blank")
        attached = await self.call("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            await self.call(f"{domain}.enable", session=True)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.ws.close()
        await self._http.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    async def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        await self.ws.send_json(msg)
        while True:
            reply = await asyncio.wait_for(self.ws.receive_json(), 30)
            self._note(reply)
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply.get("result") or {}

    def _note(self, event: dict[str, Any]) -> None:
        if event.get("method") == "Runtime.consoleAPICalled":
            self.console += [str(a.get("value", a.get("description", ""))) for a in event["params"].get("args", [])]
        elif event.get("method") == "Log.entryAdded":
            self.console.append(event["params"]["entry"].get("text", ""))
        elif event.get("method") == "Runtime.exceptionThrown":
            self.console.append("exception: " + event["params"]["exceptionDetails"].get("text", ""))

    async def goto(self, url: str, settle_s: float = 0.5) -> None:
        await self.call("Page.navigate", session=True, url=url)
        await self.wait_loaded()
        await asyncio.sleep(settle_s)

    async def wait_loaded(self) -> None:
        for _ in range(100):
            state = await self.eval("document.readyState")
            if state == "complete":
                return
            await asyncio.sleep(0.1)

    async def eval(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True)
        return (result.get("result") or {}).get("value")

    async def dom(self) -> str:
        return await self.eval("document.documentElement.outerHTML") or ""

    async def boxes(self, selector: str) -> list[dict[str, float]]:
        """Page coordinates of every element the selector finds."""
        return await self.eval(
            f"Array.from(document.querySelectorAll({selector!r})).map(e => {{const r = e.getBoundingClientRect(); "
            "return {x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height}; })") or []

    async def screenshot(self, clip: dict[str, float] | None = None) -> bytes:
        """A PNG of the page, or of one region of it (page coordinates)."""
        import base64

        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode((await self.call("Page.captureScreenshot", session=True, **params))["data"])
