"""A corpus of malformed inputs: each exits 2 with a message naming file, line and field, never a traceback."""


import pytest

from loadbench.cli import main as cli

GOOD_ITEM = '{"id": "a", "input": "hi", "target": "x"}'
BASE = """name: t
dataset: d.jsonl
candidates:
  - name: a
    sim: instant
load:
  rate_qps: 5
  duration_s: 1
"""


def case(scenario=BASE, dataset=GOOD_ITEM + "\n", extra_files=None, args=(), env=None, expect=(), line=None):
    return {"scenario": scenario, "dataset": dataset, "extra": extra_files or {}, "args": list(args), "env": env or {},
            "expect": list(expect), "line": line}


def with_load(text):
    return BASE.replace("  rate_qps: 5\n  duration_s: 1\n", text)


CASES = {
    # --- scenario file
    "yaml-syntax": case(scenario="name: t\ncandidates: [a, b\n", expect=["YAML syntax error"]),
    "yaml-tab-indent": case(scenario="name: t\n\tdataset: d.jsonl\n", expect=["YAML syntax error"]),
    "not-a-mapping": case(scenario="- just\n- a list\n", expect=["must be a YAML mapping"], line=1),
    "empty-scenario": case(scenario="", expect=["must be a YAML mapping"]),
    "unknown-top-key": case(scenario=BASE + "outptu: {dir: x}\n", expect=["outptu", "did you mean 'output'"], line=9),
    "unknown-load-key": case(scenario=BASE.replace("  rate_qps: 5", "  rate_qsp: 5"), expect=["load.rate_qsp", "did you mean 'rate_qps'"], line=7),
    "unknown-candidate-key": case(scenario=BASE.replace("    sim: instant", "    sim: instant\n    modle: x"), expect=["candidates[0].modle", "did you mean 'model'"], line=6),
    "missing-dataset-key": case(scenario=BASE.replace("dataset: d.jsonl\n", ""), expect=["dataset", "required"]),
    "missing-load": case(scenario=BASE.split("load:")[0], expect=["load", "required"]),
    "no-candidates": case(scenario=BASE.replace("  - name: a\n    sim: instant\n", " []\n").replace("candidates:\n []", "candidates: []"), expect=["candidates"]),
    "rate-zero": case(scenario=with_load("  rate_qps: 0\n  duration_s: 1\n"), expect=["load.rate_qps", "greater than 0"], line=7),
    "rate-negative": case(scenario=with_load("  rate_qps: -4\n  duration_s: 1\n"), expect=["load.rate_qps"], line=7),
    "rate-not-number": case(scenario=with_load("  rate_qps: fast\n  duration_s: 1\n"), expect=["load.rate_qps", "valid number"], line=7),
    "rate-over-cap": case(scenario=with_load("  rate_qps: 5000000\n  duration_s: 1\n"), expect=["load.rate_qps", "less than or equal"]),
    "duration-over-cap": case(scenario=with_load("  rate_qps: 5\n  duration_s: 99999999\n"), expect=["load.duration_s"]),
    "unbounded-run": case(scenario=with_load("  rate_qps: 5\n"), expect=["give duration_s or requests"]),
    "both-bounds": case(scenario=with_load("  rate_qps: 5\n  duration_s: 1\n  requests: 5\n"), expect=["not both"]),
    "unknown-arrival": case(scenario=with_load("  rate_qps: 5\n  duration_s: 1\n  arrival: uniform\n"), expect=["load.arrival", "'uniform'"]),
    "gamma-zero-shape": case(scenario=with_load("  rate_qps: 5\n  duration_s: 1\n  arrival: gamma\n  burstiness: 0\n"), expect=["load.burstiness"]),
    "closed-without-users": case(scenario=with_load("  rate_qps: 5\n  duration_s: 1\n  mode: closed\n"), expect=["concurrency"]),
    "bad-saturation-policy": case(scenario=with_load("  rate_qps: 5\n  duration_s: 1\n  on_saturation: panic\n"), expect=["load.on_saturation"]),
    "candidate-without-endpoint": case(scenario=BASE.replace("    sim: instant", "    model: m"), expect=["base_url", "sim"]),
    "candidate-both-endpoints": case(scenario=BASE.replace("    sim: instant", "    sim: instant\n    base_url: http://127.0.0.1:9/v1"), expect=["not both"]),
    "bad-url-scheme": case(scenario=BASE.replace("    sim: instant", "    base_url: ftp://x/v1"), expect=["http://"]),
    "duplicate-candidate": case(scenario=BASE.replace("load:", "  - name: a\n    sim: instant\nload:"), expect=["used twice"]),
    "bad-candidate-name": case(scenario=BASE.replace("name: a", "name: 'a b/c'"), expect=["candidates[0].name"]),
    "header-injection": case(scenario=BASE.replace("    sim: instant", '    sim: instant\n    headers: {X-Team: "a\\r\\nX-Evil: 1"}'),
                             expect=["candidates[0].headers", "line breaks"]),
    "http-client-typo": case(scenario=BASE.replace("    sim: instant", "    sim: instant\n    http_client: httpx"),
                             expect=["candidates[0].http_client", "'fast' or 'aiohttp'"]),
    "secret-in-headers": case(scenario=BASE.replace("    sim: instant", "    sim: instant\n    headers: {Authorization: Bearer sk-123}"), expect=["api_key_env"]),
    "unknown-sim-profile": case(scenario=BASE.replace("sim: instant", "sim: gigantic"), expect=["candidates[0].sim", "unknown simulator profile"]),
    "unknown-sim-param": case(scenario=BASE.replace("    sim: instant", "    sim: instant\n    sim_params: {slotz: 3}"), expect=["sim_params", "slotz"]),
    "missing-api-key-env": case(scenario=BASE.replace("    sim: instant", "    base_url: http://127.0.0.1:9/v1\n    api_key_env: LB_TEST_UNSET_KEY"),
                                expect=["candidates[0].api_key_env", "LB_TEST_UNSET_KEY is not set"]),
    "unreachable-base-url": case(scenario=BASE.replace("    sim: instant", "    base_url: http://127.0.0.1:9/v1"), expect=["cannot reach http://127.0.0.1:9/v1"]),
    "bad-slo": case(scenario=BASE + "slo: ['latency p95 <= 2']\n", expect=["slo", "give the unit"]),
    "unknown-slo-metric": case(scenario=BASE + "slo: ['speed p95 <= 2s']\n", expect=["slo", "unknown metric"]),
    "self-judge": case(scenario=BASE + "scoring: {judge: {sim: instant}}\n", expect=["grading its own answers"]),
    "unknown-default-scorer": case(scenario=BASE + "scoring: {default_assert: [{type: exactish}]}\n", expect=["scoring.default_assert[0]", "unknown scorer"]),
    "non-utf8-scenario": case(scenario=b"name: t\nx: \xff\n", expect=["not valid UTF-8"], line=2),
    # --- dataset
    # the scenario file and its dataset line, and where the relative path led
    "missing-dataset-file": case(dataset=None, expect=["s.yaml:2: dataset: d.jsonl: file not found (tried ",
                                                       "d.jsonl; a relative path is read from the scenario file's folder"]),
    "empty-dataset": case(dataset="\n\n", expect=["dataset has no records"]),
    "dataset-bad-json": case(dataset=GOOD_ITEM + "\n{oops}\n", expect=["d.jsonl:2", "not valid JSON"], line=2),
    "dataset-truncated-line": case(dataset=GOOD_ITEM + '\n{"input": "cut', expect=["d.jsonl:2", "truncated"], line=2),
    "dataset-non-utf8": case(dataset=GOOD_ITEM.encode() + b'\n{"input": "\xff\xfe"}\n', expect=["d.jsonl:2", "UTF-8"], line=2),
    "dataset-duplicate-ids": case(dataset=GOOD_ITEM + "\n" + GOOD_ITEM + "\n", expect=["d.jsonl:2", "duplicate id 'a'"], line=2),
    "dataset-missing-input": case(dataset='{"id": "q", "target": "x"}\n', expect=["d.jsonl:1", "input", "required"], line=1),
    "dataset-unknown-field": case(dataset='{"input": "x", "traget": "y"}\n', expect=["d.jsonl:1", "traget", "did you mean 'target'"], line=1),
    "dataset-wrong-type": case(dataset='{"input": 42}\n', expect=["d.jsonl:1", "input"], line=1),
    "dataset-not-object": case(dataset='["input", "x"]\n', expect=["d.jsonl:1", "JSON object"], line=1),
    "dataset-unknown-scorer": case(dataset='{"input": "x", "assert": [{"type": "fuzzymatch"}]}\n', expect=["d.jsonl:1", "assert[0]", "unknown scorer"], line=1),
    "dataset-invalid-json-schema": case(dataset='{"input": "x", "assert": [{"type": "json", "schema": {"type": "objekt"}}]}\n',
                                        expect=["d.jsonl:1", "schema is itself invalid"], line=1),
    "dataset-bad-regex": case(dataset='{"input": "x", "assert": [{"type": "match", "regex": "(unclosed"}]}\n', expect=["d.jsonl:1", "invalid regex"], line=1),
    "dataset-unknown-template-variable": case(dataset='{"input": "x", "assert": [{"type": "judge", "prompt": "grade {answer}"}]}\n',
                                              expect=["d.jsonl:1", "unknown template variables"], line=1),
    "dataset-bad-request-overlay": case(dataset='{"input": "x", "request": {"max_tokens": -1}}\n', expect=["d.jsonl:1", "request.max_tokens"], line=1),
    # --- command line
    "bad-set-syntax": case(args=["--set", "load.rate_qps"], expect=["--set", "dotted.path=value"]),
    "set-unknown-list-element": case(args=["--set", "candidates.zed.stream=false"], expect=["no list element 'zed'"]),
    "unknown-candidate-flag": case(args=["--candidate", "nobody"], expect=["unknown candidate(s) nobody"]),
    "scenario-missing": case(scenario=None, expect=["scenario file not found"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_exits_2_with_a_clear_message(name, tmp_path, capsys, monkeypatch):
    c = CASES[name]
    monkeypatch.delenv("LB_TEST_UNSET_KEY", raising=False)
    for key, value in c["env"].items():
        monkeypatch.setenv(key, value)
    scenario = tmp_path / "s.yaml"
    if c["scenario"] is not None:
        scenario.write_bytes(c["scenario"] if isinstance(c["scenario"], bytes) else c["scenario"].encode())
    if c["dataset"] is not None:
        (tmp_path / "d.jsonl").write_bytes(c["dataset"] if isinstance(c["dataset"], bytes) else c["dataset"].encode())
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", "s.yaml", "--out", str(tmp_path / "out"), "--quiet", "--no-metrics", *c["args"]])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for fragment in c["expect"]:
        assert fragment in err, (fragment, err)
    if c["line"] is not None:
        assert f":{c['line']}:" in err, err
    assert not (tmp_path / "out").exists()  # nothing was sent


def test_the_corpus_is_large():
    assert len(CASES) >= 40


def test_debug_flag_shows_a_traceback_for_unexpected_errors(tmp_path, capsys, monkeypatch):

    def boom(args):
        raise RuntimeError("unexpected")

    monkeypatch.setitem(cli.COMMANDS, "profiles", boom)
    assert cli.main(["profiles"]) == 70
    assert "Traceback" not in capsys.readouterr().err
    assert cli.main(["--debug", "profiles"]) == 70
    assert "Traceback" in capsys.readouterr().err
