#!/usr/bin/env python3
"""The README's demo excerpt, cut from what `loadbench run scenarios/demo.yaml` really prints.

    python scripts/readme_excerpt.py            # run the demo (about a minute) and rewrite the excerpt
    python scripts/readme_excerpt.py RUN_DIR    # cut it from an existing demo run's summary.json

tests/views/test_readme_excerpt.py checks that the excerpt in the README still has the rows and
sections the console prints, in the same order, so it cannot drift from the product.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BEGIN, END = "<!-- demo-excerpt:begin (scripts/readme_excerpt.py writes this) -->", "<!-- demo-excerpt:end -->"
# Table rows shown, in the console's order; "..." marks rows left out.
ROWS = ("accuracy [95% CI]", "accuracy over attempts", "pass / fail / unscored / skipped", "cost per correct", "...",
        "latency p95", "TTFT p50 / p95", "...")


def label(line: str) -> str:
    """A table row's label: the text before the first gap of two spaces."""
    return re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]


def excerpt(console: str) -> str:
    lines = console.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("---"))
    out = [lines[start - 1], lines[start]]
    table = {label(line): line for line in lines[start + 1:] if line.strip() and not line.startswith(("latency =", " "))}
    for row in ROWS:
        out.append("..." if row == "..." else table[row])
    rest = lines[lines.index(table["cost (window)"]) + 1:] if "cost (window)" in table else []
    keep = False
    for line in rest:
        if not line.strip():
            keep = False
        elif not line.startswith(" "):  # a section starts; the footnote and the error classes stay out
            keep = not line.startswith(("latency =", "quality error classes", "WARNING", "run stopped"))
            if keep:
                out.append("")
        if keep and line.strip():
            out.append(line)
    return "\n".join(out)


def shape(text: str) -> list[str]:
    """What must not drift: the table's row labels and the kinds of section after it, in order
    (the numbers and verdict words change with every run)."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith((" ", "---")) or line == "...":
            continue
        if line.startswith("server side"):
            out.append("[server side]")
        elif line.startswith("SLO:"):
            out.append("[SLO]")
        elif " vs " in line.split(":")[0]:
            out.append("[comparison]")
        elif ":" in line.split("  ")[0] and not re.split(r"\s{2,}", line, maxsplit=1)[1:]:
            out.append("[decision]")
        else:
            out.append(label(line))
    return out


def readme_excerpt() -> str:
    text = README.read_text()
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip().removeprefix("```").removesuffix("```").strip("\n")


def console_of(run_dir: Path) -> str:
    sys.path.insert(0, str(ROOT))
    from loadbench.views.text import comparison_table

    return comparison_table(json.loads((run_dir / "summary.json").read_text()))


def main() -> int:
    if len(sys.argv) > 1:
        run_dir = Path(sys.argv[1])
    else:
        out = Path(tempfile.mkdtemp(prefix="loadbench-readme-"))
        subprocess.run([sys.executable, "-m", "loadbench", "run", str(ROOT / "scenarios" / "demo.yaml"), "--out", str(out),
                        "--quiet", "--no-metrics", "--fail-on", "none"], check=True, cwd=ROOT)
        (run_dir,) = list(out.iterdir())
    text = README.read_text()
    begin, end = text.index(BEGIN), text.index(END)
    block = f"{BEGIN}\n```\n{excerpt(console_of(run_dir))}\n```\n"
    README.write_text(text[:begin] + block + text[end:])
    print(f"rewrote the demo excerpt in {README} from {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
