"""The command line's entry: parse, dispatch to one handler per command, map errors to exit codes; process settings applied here once."""

from __future__ import annotations

import argparse
import sys
import traceback

from ..config.errors import ConfigError
from ..engine.outcome import (  # noqa: F401 (exit_code is part of the CLI's surface in tests)
    EXIT_BAD_INPUT,
    EXIT_INCONCLUSIVE,
    EXIT_INTERRUPTED,
    EXIT_INVALID_RUN,
    EXIT_OK,
    EXIT_REGRESSED,
    EXIT_SLO_FAILED,
    exit_code,
)
from ..engine.process import run_settings
from .parser import _parser
from .probe_cmd import _cmd_probe
from .run_cmd import _cmd_load, _cmd_run, _cmd_sweep
from .service_cmd import _cmd_compare, _cmd_history, _cmd_serve
from .tools_cmd import (
    _cmd_calibrate,
    _cmd_generate,
    _cmd_profiles,
    _cmd_report,
    _cmd_rescore,
    _cmd_review,
    _cmd_sim,
    _cmd_worker,
)

COMMANDS = {"serve": _cmd_serve, "history": _cmd_history, "compare": _cmd_compare, "calibrate": _cmd_calibrate, "generate": _cmd_generate, "load": _cmd_load, "sweep": _cmd_sweep, "run": _cmd_run, "report": _cmd_report, "sim": _cmd_sim, "profiles": _cmd_profiles,
            "rescore": _cmd_rescore, "review": _cmd_review, "probe": _cmd_probe}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:  # a worker process of --workers (internal, not in --help)
        worker = argparse.ArgumentParser(prog="loadbench worker")
        worker.add_argument("--fd", type=int, required=True)
        with run_settings():
            return _cmd_worker(worker.parse_args(argv[1:]))
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        with run_settings():  # uvloop and the switch interval, in this one place for every command
            return COMMANDS[args.command](args)
    except ConfigError as err:
        for problem in err.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("\nloadbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # an unexpected failure: a short message, the traceback only on request
        if args.debug:
            traceback.print_exc()
        else:
            print(f"loadbench: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return 70
