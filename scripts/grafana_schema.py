#!/usr/bin/env python3
"""Grafana's own Dashboard type as a JSON Schema, for tests/views/test_dashboards.py.

Grafana cannot run here, so the dashboards are checked against the type Grafana publishes on the
npm registry (@grafana/schema, `Dashboard` in raw/dashboard/x/types.gen.d.ts), turned into a JSON
Schema by ts-json-schema-generator.  Both are installed once into the cache (~/.cache/loadbench or
$LOADBENCH_CACHE); later runs find the schema there.

    python scripts/grafana_schema.py          # make what is missing, print the schema's path
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCHEMA_VERSION = "13.2.3"  # @grafana/schema, pinned: the test checks against one known type
GENERATOR_VERSION = "2.4.0"  # ts-json-schema-generator
TYPE_FILE = "node_modules/@grafana/schema/dist/types/raw/dashboard/x/types.gen.d.ts"


def schema_path() -> Path:
    root = Path(os.environ.get("LOADBENCH_CACHE") or Path.home() / ".cache" / "loadbench")
    return root / f"grafana-schema-{SCHEMA_VERSION}" / "dashboard.schema.json"


def build() -> Path:
    out = schema_path()
    if out.exists():
        return out
    work = out.parent
    work.mkdir(parents=True, exist_ok=True)
    print(f"[grafana schema] installing @grafana/schema {SCHEMA_VERSION} from the npm registry into {work}", file=sys.stderr)
    subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(work),
                    f"@grafana/schema@{SCHEMA_VERSION}", f"ts-json-schema-generator@{GENERATOR_VERSION}", "typescript@5"],
                   check=True, stdout=subprocess.DEVNULL)
    tmp = out.with_suffix(".tmp")
    subprocess.run([str(work / "node_modules" / ".bin" / "ts-json-schema-generator"), "--path", str(work / TYPE_FILE),
                    "--type", "Dashboard", "--no-type-check", "-o", str(tmp)], check=True)
    tmp.rename(out)
    return out


if __name__ == "__main__":
    print(build())
