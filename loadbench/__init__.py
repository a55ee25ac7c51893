"""loadbench: open-loop load and quality benchmark for OpenAI-compatible LLM deployments.

The public API (docs/api.md) is what `__all__` lists; every other module is internal and may
change between versions.  The names load on first use, so `import loadbench` stays cheap
for the processes loadbench starts itself (workers, simulators).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = ["ConfigError", "RunResult", "Scenario", "Score", "ScorerParams", "__version__", "run", "run_async", "scorer",
           "sweep", "variant"]

_LAZY = {
    "run": ("api", "run"), "run_async": ("api", "run_async"), "sweep": ("api", "sweep"), "RunResult": ("api", "RunResult"),
    "Scenario": ("config.scenario", "Scenario"), "ConfigError": ("config.errors", "ConfigError"),
    "Score": ("scoring.scores", "Score"), "scorer": ("scoring.registry", "scorer"),
    "ScorerParams": ("scoring.basic", "SpecBase"), "variant": ("plan.variants", "variant"),
}

if TYPE_CHECKING:
    from .api import RunResult, run, run_async, sweep
    from .config.errors import ConfigError
    from .config.scenario import Scenario
    from .plan.variants import variant
    from .scoring.basic import SpecBase as ScorerParams
    from .scoring.registry import scorer
    from .scoring.scores import Score


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'loadbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
