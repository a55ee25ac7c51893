"""The README's demo excerpt is what the demo prints: same rows, same sections, same order
(scripts/readme_excerpt.py rewrites it from a real run)."""

from __future__ import annotations

import sys

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import readme_excerpt


def test_the_readme_excerpt_has_the_shape_of_a_real_demo_run(demo_run):
    real = readme_excerpt.excerpt(readme_excerpt.console_of(demo_run))
    written = readme_excerpt.readme_excerpt()
    assert readme_excerpt.shape(written) == readme_excerpt.shape(real), (
        "README.md's demo excerpt no longer matches what the demo prints: run python scripts/readme_excerpt.py")
    # the header names the demo's candidates
    assert written.splitlines()[0].split() == real.splitlines()[0].split()
