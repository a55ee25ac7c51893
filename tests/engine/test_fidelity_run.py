"""Fidelity end to end against real answering servers on loopback: one that answers multiple-choice
questions by the letter the answer had in the original (a memorised test), one that answers by the
option's text, one that is right half the time; public scores held against what they did."""

from __future__ import annotations

import json
import re

from aiohttp import web

import loadbench

N = 40
QUESTIONS = [{"id": f"q{i}", "input": f"Which of these is option number {i}?",
              "choices": [f"alpha {i}", f"beta {i}", f"gamma {i}", f"delta {i}"], "target": "BCDA"[i % 4]} for i in range(N)]
OPTION = re.compile(r"^([A-D])\. (.*)$", re.M)


def answering_app(mode: str) -> web.Application:
    by_question = {q["input"]: q for q in QUESTIONS}

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        text = body["messages"][-1]["content"]
        q = by_question[text.split("\n\n")[0]]
        shown = {m.group(2): m.group(1) for m in OPTION.finditer(text)}
        right_text = q["choices"]["ABCD".index(q["target"])]
        if mode == "position":  # memorised: the original letter, whatever is there now
            answer = q["target"]
        elif mode == "text" or int(q["id"][1:]) % 2:  # finds the right text wherever it is shown
            answer = shown[right_text]
        else:
            answer = next(letter for option, letter in shown.items() if option != right_text)
        return web.json_response({"choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                                               "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 20, "completion_tokens": 1, "total_tokens": 21}})

    async def models(_request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "m"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


async def test_position_memory_shows_as_a_gap_and_public_scores_invert_exactly_once(tmp_path, serve_app):
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    bases = {mode: await serve_app(answering_app(mode)) for mode in ("position", "text", "half")}
    scenario = {
        "name": "fidelity", "dataset": "mc.jsonl",
        "candidates": [
            {"name": "position", "base_url": bases["position"] + "/v1", "model": "m", "stream": False,
             "public_scores": {"mmlu": 80.0, "agree": 85.0}},
            {"name": "text", "base_url": bases["text"] + "/v1", "model": "m", "stream": False,
             "public_scores": {"mmlu": 90.0, "agree": 90.0}},
            {"name": "half", "base_url": bases["half"] + "/v1", "model": "m", "stream": False,
             "public_scores": {"mmlu": 85.0, "agree": 50.0}},
        ],
        "load": {"arrival": "constant", "rate_qps": 100, "requests": 2 * N + 20, "seed": 5},
        "fidelity": {"variants": ["original", "choices_shuffled"], "reference_dataset": "public.jsonl",
                     "reference_name": "mmlu-subset"},
    }
    # a public-style set run in the same run (the same questions under other ids: the servers know them)
    (tmp_path / "public.jsonl").write_text("".join(json.dumps({**q, "id": f"pub{i}"}) + "\n" for i, q in enumerate(QUESTIONS[:20])))
    (tmp_path / "s.yaml").write_text(json.dumps(scenario))
    result = await loadbench.run_async(tmp_path / "s.yaml", out=tmp_path / "runs")
    cands = result.summary["candidates"]

    position = cands["position"]
    assert position["by_variant"]["original"]["accuracy"] == 1.0  # the server's truth on the test as published
    assert position["by_variant"]["choices_shuffled"]["accuracy"] < 0.5
    assert position["format_gap"]["between"] == ["original", "choices_shuffled"] and position["format_gap"]["significant"]
    assert position["contamination"]["shuffle_drop"]["signal"] is True
    assert position["accuracy"]["value"] == 1.0 and position["accuracy"]["n"] == N  # headline: the items as written

    text = cands["text"]
    assert text["by_variant"]["original"]["accuracy"] == text["by_variant"]["choices_shuffled"]["accuracy"] == 1.0
    assert text["format_gap"]["difference"] == 0 and not text["format_gap"]["significant"]
    assert text["contamination"]["shuffle_drop"]["signal"] is False

    # the public-style set, measured here: counted apart from the headline, held against the domain
    assert cands["half"]["by_variant"]["reference"]["n"] == 20 and cands["half"]["by_variant"]["reference"]["accuracy"] == 0.5
    assert cands["text"]["by_variant"]["reference"]["accuracy"] == 1.0 and cands["text"]["accuracy"]["n"] == N
    measured = result.summary["fidelity"]["public"]["mmlu-subset (measured here)"]
    assert measured["public"]["half"] == 50.0 and measured["inversions"] == []

    public = result.summary["fidelity"]["public"]
    significant = [i for i in public["mmlu"]["inversions"] if i["significant"]]
    # mmlu puts half (85) above position (80); the traffic puts position (100%) far above half (50%)
    assert [(i["public_better"], i["domain_better"]) for i in significant] == [("half", "position")]
    assert public["agree"]["inversions"] == []
    # the same run's report says so
    html = (result.run_dir / "report.html").read_text()
    assert "Does the public benchmark predict your traffic?" in html and "INVERSION: mmlu puts half ahead" in html


def test_paraphrases_are_asked_once_and_every_candidate_gets_the_same_text(tmp_path):
    items = [{"id": "p1", "input": "Which plan includes phone support?", "choices": ["Free", "Team", "Business"], "target": "C"},
             {"id": "p2", "input": "Say hello.", "target": "hello"}]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    scenario = {"name": "para", "dataset": "d.jsonl",
                "candidates": [{"name": "a", "sim": "instant"}, {"name": "b", "sim": "instant"}],
                "load": {"arrival": "constant", "rate_qps": 50, "requests": 4, "seed": 1},
                "fidelity": {"variants": ["original", "paraphrase"], "paraphrase": {"sim": "judge"}}}
    (tmp_path / "s.yaml").write_text(json.dumps(scenario))
    result = loadbench.run(tmp_path / "s.yaml", out=tmp_path / "runs")
    rows = [json.loads(line) for line in (result.run_dir / "paraphrases.jsonl").read_text().splitlines()]
    assert [r["item_id"] for r in rows] == ["p1", "p2"] and all(r["paraphrase"] != r["source"] for r in rows)
    for cand in ("a", "b"):
        v = result.summary["candidates"][cand]["by_variant"]["paraphrase"]
        assert v["n"] == 2 and v["accuracy"] == 1.0  # the simulated candidates read the reworded questions

    # a paraphraser that cannot be reached stops the run before any traffic, naming the items
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scenario["fidelity"]["paraphrase"] = {"base_url": f"http://127.0.0.1:{port}/v1", "model": "p", "timeout_s": 2}
    (tmp_path / "s.yaml").write_text(json.dumps(scenario))
    try:
        loadbench.run(tmp_path / "s.yaml", out=tmp_path / "runs2")
    except loadbench.ConfigError as err:
        text = str(err)
        assert "fidelity.paraphrase" in text and "item p1" in text and "connection refused" in text
    else:
        raise AssertionError("a failing paraphraser must stop the run")
    assert not (tmp_path / "runs2").exists()
