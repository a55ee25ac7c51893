"""Dashboards and provisioning, checked offline: structure, units, descriptions, the metric contract, PromQL."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loadbench.views.prometheus import CONTRACT, exposed_names

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
EXPOSED = {n for spec in CONTRACT for n in exposed_names(spec)}
sys.path.insert(0, str(GRAFANA))
import build_dashboards  # noqa: E402


def dashboards():
    return {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def panels(dash):
    for p in dash["panels"]:
        if p["type"] != "row":
            yield p


def substitute(expr, run_id=".*", rate="5s", range_s=60):
    return (expr.replace("$__rate_interval", rate).replace("$__range_s", str(range_s)).replace("$__range", f"{range_s}s")
            .replace("$run_id", run_id).replace("$scenario", ".*").replace("$candidate", ".*"))


def test_committed_json_matches_the_generator():
    built = build_dashboards.build()
    on_disk = dashboards()
    assert set(built) == set(on_disk)
    for name, dash in built.items():
        assert json.loads(json.dumps(dash, sort_keys=True)) == on_disk[name], f"regenerate with: python grafana/build_dashboards.py ({name})"


@pytest.mark.parametrize("name", ["loadbench-comparison.json", "loadbench-capacity.json"])
def test_structure_variables_units_and_descriptions(name):
    dash = dashboards()[name]
    assert dash["uid"] and 8 <= len(dash["uid"]) <= 40 and dash["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert set(variables) == {"datasource", "run_id", "scenario", "candidate"}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["candidate"]["multi"] and variables["candidate"]["includeAll"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in panels(dash):
        assert p["description"].strip(), p["title"]
        assert p["fieldConfig"]["defaults"]["unit"], p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"]
            expr = t["expr"]
            for _fn in re.findall(r"\b(rate|increase)\(", expr):
                assert "[$__rate_interval]" in expr or "[$__range]" in expr, (p["title"], expr)
        gp = p["gridPos"]
        assert gp["x"] >= 0 and gp["x"] + gp["w"] <= 24


def test_comparison_table_has_the_columns_users_compare():
    table = next(p for p in panels(dashboards()["loadbench-comparison.json"]) if p["title"] == "Candidate comparison")
    names = {o["properties"][0]["value"] for o in table["fieldConfig"]["overrides"]}
    assert {"Accuracy", "Accuracy CI low", "Accuracy CI high", "Latency p50", "Latency p95", "Latency p99", "TTFT p50", "TTFT p95",
            "TTFT p99", "ITL p50", "Achieved QPS", "Error %", "Correct answers/s", "Cost per task", "Cost per correct"} <= names


def test_every_queried_series_is_in_the_contract_and_candidates_are_filtered():
    for dash in dashboards().values():
        for p in panels(dash):
            for t in p["targets"]:
                for series in re.findall(r"\bloadbench_[a-z_]+", t["expr"]):
                    assert series in EXPOSED, (p["title"], series)
                if "loadbench_event_loop_lag" not in t["expr"] and "loadbench_run_phase" not in t["expr"]:
                    assert 'candidate=~"$candidate"' in t["expr"], (p["title"], t["expr"])
                if "loadbench_max_sustainable" not in t["expr"] and "loadbench_sweep_capacity" not in t["expr"]:  # keyed by sweep_id
                    assert 'run_id=~"$run_id"' in t["expr"], (p["title"], t["expr"])
        for v in dash["templating"]["list"]:
            for series in re.findall(r"\bloadbench_[a-z_]+", json.dumps(v)):
                assert series in EXPOSED


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is installed by .ci/run (Debian prometheus)")
def test_every_panel_query_parses_with_promtool(tmp_path):
    rules = []
    for _name, dash in dashboards().items():
        for p in panels(dash):
            for t in p["targets"]:
                rules.append({"record": f"loadbench:check:{len(rules)}", "expr": substitute(t["expr"])})
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    proc = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_provisioning_files():
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus" and ds["datasources"][0]["uid"]
    prov = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "loadbench.yaml").read_text())
    assert prov["providers"][0]["type"] == "file" and prov["providers"][0]["options"]["path"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {"prometheus", "pushgateway", "grafana", "loadbench"} <= set(compose["services"])
    mounts = " ".join(compose["services"]["grafana"]["volumes"])
    assert "grafana/provisioning" in mounts and "grafana/dashboards" in mounts
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    assert any(j.get("honor_labels") for j in prom["scrape_configs"])


@pytest.mark.parametrize("name", sorted(build_dashboards.build()))
def test_dashboards_conform_to_grafanas_published_dashboard_type(name):
    """Grafana cannot run here: check against the Dashboard type Grafana publishes on npm
    (@grafana/schema), as a JSON Schema that scripts/grafana_schema.py makes (scripts/test runs it)."""
    import json
    import sys

    import jsonschema

    sys.path.insert(0, str(ROOT / "scripts"))
    import grafana_schema

    path = grafana_schema.schema_path()
    assert path.exists(), f"{path} is missing: python scripts/grafana_schema.py makes it (needs npm)"
    schema = json.loads(path.read_text())
    dashboard = json.loads((ROOT / "grafana" / "dashboards" / name).read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:160]}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(dashboard)]
    assert not errors, errors
    # and the check has teeth: the shapes the dashboards once had are refused
    broken = json.loads(json.dumps(dashboard))
    broken["templating"]["list"][1]["current"] = {}
    broken["templating"]["list"][1]["allValue"] = None
    assert len(list(jsonschema.Draft7Validator(schema).iter_errors(broken))) >= 2
