"""The installed package's version (from its metadata; one place, read by the package and its parts)."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("loadbench")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
