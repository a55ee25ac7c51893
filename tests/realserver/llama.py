"""A real llama.cpp llama-server on loopback for the tests: built by scripts/build_llama_server.py."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import build_llama_server  # noqa: E402

# Qwen2.5 token ids in the tiny model: <tool_call>, "\n", <|im_end|>.  A random model emits a tool
# call only when pushed there; every whitespace-only token but "\n" is pushed away, so the grammar's
# optional indentation cannot eat the token budget.
TOOL_CALL_ID, NEWLINE_ID, IM_END_ID = 151657, 198, 151645


def built() -> dict[str, Path]:
    p = build_llama_server.paths()
    missing = [str(p[k]) for k in ("server", "model") if not p[k].exists()]
    if missing:
        raise AssertionError(f"llama-server or its model is missing ({', '.join(missing)}): scripts/test builds them "
                             "(python scripts/build_llama_server.py); run it and read its output for the reason")
    return p


def whitespace_ids() -> list[int]:
    """Ids of the vocabulary's whitespace-only tokens (byte-level BPE: Ġ space, ĉ tab, Ċ newline, č CR)."""
    cache = build_llama_server.paths()["root"] / "whitespace-ids.json"
    if cache.exists():
        return json.loads(cache.read_text())
    import gguf

    reader = gguf.GGUFReader(str(built()["model"]))
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    ids = [i for i, t in enumerate(tokens) if t and all(c in "ĠĉĊč" for c in t)]
    cache.write_text(json.dumps(ids))
    return ids


def tool_call_bias() -> dict[str, int]:
    bias = {str(i): -100 for i in whitespace_ids()}
    bias.update({str(TOOL_CALL_ID): 100, str(NEWLINE_ID): 100, str(IM_END_ID): 100})
    return bias


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def llama_server(slots: int = 8, ctx: int = 8192) -> Iterator[str]:
    """Start llama-server (--metrics, `slots` parallel slots, one thread); yield its base URL; stop it by PID."""
    p = built()
    port = free_port()
    log = open(p["root"] / f"server-{port}.log", "wb")
    proc = subprocess.Popen([str(p["server"]), "-m", str(p["model"]), "--host", "127.0.0.1", "--port", str(port),
                             "--metrics", "-np", str(slots), "-t", "1", "-c", str(ctx), "--jinja", "--no-webui"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"llama-server exited with {proc.returncode}; log: {log.name}")
            with contextlib.suppress(OSError):  # not listening yet, or loading the model (503): ask again
                with urllib.request.urlopen(base + "/health", timeout=1) as resp:
                    if resp.status == 200:
                        break
            if time.monotonic() > deadline:
                raise AssertionError(f"llama-server did not become healthy in 60 s; log: {log.name}")
            time.sleep(0.2)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
