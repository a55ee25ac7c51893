#!/usr/bin/env python3
"""Build llama.cpp's llama-server (CPU only) and a tiny random-weight model, into a cache outside the repo.

The test suite talks to a real inference server.  Nothing can be downloaded but registry packages,
so the source comes from PyPI's llama-cpp-python sdist (it vendors llama.cpp whole, with small
vocabulary-only GGUF files) and the model is written here with the `gguf` package: random weights
over the qwen2 vocabulary, so llama.cpp's Qwen2.5 chat template (and its tool-call syntax) applies.

    python scripts/build_llama_server.py            # build what is missing, print the paths as JSON
    python scripts/build_llama_server.py --check    # exit 0 if both are there, 1 if not

The cache is $LOADBENCH_CACHE or ~/.cache/loadbench; a second run finds everything there at once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

SDIST_VERSION = "0.3.36"  # llama-cpp-python; pinned so the server and its metrics names stay put
MODEL_VERSION = 1  # bump when write_model changes what it writes


def cache_root() -> Path:
    return Path(os.environ.get("LOADBENCH_CACHE") or Path.home() / ".cache" / "loadbench")


def paths() -> dict[str, Path]:
    root = cache_root() / f"llama.cpp-{SDIST_VERSION}"
    return {
        "root": root,
        "source": root / f"llama_cpp_python-{SDIST_VERSION}",
        "server": root / "bin" / "llama-server",
        "model": root / f"tiny-qwen2-v{MODEL_VERSION}.gguf",
    }


def say(msg: str) -> None:
    print(f"[llama-server build] {msg}", file=sys.stderr, flush=True)


def fetch_source(p: dict[str, Path]) -> Path:
    src = p["source"]
    if (src / "vendor" / "llama.cpp" / "CMakeLists.txt").exists():
        return src / "vendor" / "llama.cpp"
    p["root"].mkdir(parents=True, exist_ok=True)
    say(f"fetching the llama-cpp-python {SDIST_VERSION} sdist from PyPI (about 75 MB)")
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                    f"llama-cpp-python=={SDIST_VERSION}", "-d", str(p["root"])], check=True)
    archive = p["root"] / f"llama_cpp_python-{SDIST_VERSION}.tar.gz"
    with tarfile.open(archive) as tar:
        tar.extractall(p["root"], filter="data")
    archive.unlink()
    return src / "vendor" / "llama.cpp"


def build_server(p: dict[str, Path]) -> None:
    if p["server"].exists():
        return
    llama = fetch_source(p)
    build = p["root"] / "build"
    jobs = str(os.cpu_count() or 2)
    say(f"configuring llama.cpp (CPU only) in {build}")
    # No network at build time: no prebuilt web UI, no curl/OpenSSL downloads of models.
    subprocess.run(["cmake", "-S", str(llama), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                    "-DBUILD_SHARED_LIBS=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                    "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_APP=OFF",
                    "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF", "-DLLAMA_OPENSSL=OFF",
                    "-DLLAMA_CURL=OFF", "-DGGML_NATIVE=ON", "-DGGML_OPENMP=OFF"],
                   check=True, stdout=subprocess.DEVNULL)
    say(f"compiling llama-server with {jobs} jobs (about 7 minutes on 2 cores; progress below)")
    started = time.monotonic()
    proc = subprocess.Popen(["cmake", "--build", str(build), "--target", "llama-server", "-j", jobs],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    last = ""
    for line in proc.stdout:
        if line.startswith("[") and "%]" in line:
            pct = line[1:line.index("%]")].strip()
            if pct != last and int(pct) % 10 == 0:
                say(f"{pct}% after {time.monotonic() - started:.0f} s")
            last = pct
    if proc.wait() != 0:
        raise SystemExit(f"llama-server failed to build (cmake exit {proc.returncode}); see the output above")
    p["server"].parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(build / "bin" / "llama-server", p["server"])
    say(f"built {p['server']} in {time.monotonic() - started:.0f} s")


def ensure_gguf(llama: Path) -> None:
    """The gguf writer: PyPI's package, else the copy vendored beside llama.cpp."""
    try:
        import gguf  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(llama / "gguf-py"))


def write_model(p: dict[str, Path]) -> None:
    if p["model"].exists():
        return
    llama = fetch_source(p)
    ensure_gguf(llama)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tiny_gguf import write_tiny_qwen2

    say(f"writing a random-weight model over the qwen2 vocabulary to {p['model']}")
    tmp = p["model"].with_suffix(".tmp")
    write_tiny_qwen2(llama / "models" / "ggml-vocab-qwen2.gguf", tmp)
    tmp.rename(p["model"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 0 if built, 1 if not; build nothing")
    args = parser.parse_args()
    p = paths()
    if args.check:
        return 0 if p["server"].exists() and p["model"].exists() else 1
    build_server(p)
    write_model(p)
    print(json.dumps({"server": str(p["server"]), "model": str(p["model"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
