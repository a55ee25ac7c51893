"""The service policy on a final scenario, pure: every host a run would reach is the operator's."""

from __future__ import annotations

from loadbench.config.scenario import Scenario
from loadbench.service.policy import Policy, check_scenario


def scenario(tmp_path, **candidate):
    (tmp_path / "d.jsonl").write_text('{"id": "a", "input": "x"}\n')
    return Scenario.model_validate({"dataset": "d.jsonl", "candidates": [{"name": "a", "sim": "instant", **candidate}],
                                    "load": {"rate_qps": 1, "requests": 1}})


def test_a_server_metrics_host_must_be_allowed_like_a_candidate(tmp_path):
    policy = Policy(confine_dir=str(tmp_path))
    far = scenario(tmp_path, server_metrics="http://metrics.attacker.invalid:9100/metrics")
    assert any("server_metrics" in p and "attacker.invalid" in p for p in check_scenario(far, tmp_path, policy))
    near = scenario(tmp_path, server_metrics="http://127.0.0.1:9100/metrics")
    assert check_scenario(near, tmp_path, policy) == []
    own = scenario(tmp_path, server_metrics=True)  # the candidate's own host: checked as the candidate
    assert check_scenario(own, tmp_path, policy) == []
    allowed = Policy(confine_dir=str(tmp_path), allow_hosts=("metrics.attacker.invalid",))
    assert check_scenario(far, tmp_path, allowed) == []
