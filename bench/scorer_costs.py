"""Prints the CPU cost of each scorer per response (µs), measured side by side in one run.

Usage: python bench/scorer_costs.py [--n 2000]
"""

from __future__ import annotations

import argparse
import json
import time

from loadbench.config.dataset import Item
from loadbench.scoring.registry import compile_spec, score_sync
from loadbench.scoring.scores import ResponseView, ToolCall

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["id", "total", "currency", "email"],
          "properties": {"id": {"type": "string", "pattern": "^INV-"}, "total": {"type": "number", "minimum": 0},
                         "currency": {"enum": ["EUR", "USD"]}, "email": {"type": "string", "format": "email"}}}
ANSWER = json.dumps({"id": "INV-1", "total": 12.5, "currency": "EUR", "email": "a@example.com"})


def view(text: str, calls=()) -> ResponseView:
    return ResponseView(text=text, raw_text=text, tool_calls=[ToolCall(n, json.dumps(a), a, None) for n, a in calls],
                        refusal=None, finish_reason="stop", input_tokens=10, output_tokens=10, token_source="server",
                        cost_usd=0.0, ttft_s=0.1, latency_s=0.5, tpot_s=0.01)


CASES = [
    ("match exact", {"type": "match"}, {"input": "q", "target": "billing"}, view("Billing")),
    ("match regex last", {"type": "match", "regex": r"ANSWER:\s*(\w+)"}, {"input": "q", "target": "b"}, view("ANSWER: a ... ANSWER: b")),
    ("numeric", {"type": "numeric"}, {"input": "q", "target": "1299.5"}, view("The total is $1,299.50")),
    ("choice", {"type": "choice"}, {"input": "q", "target": "B", "choices": ["x", "y", "z"]}, view("Thinking...\nANSWER: B")),
    ("json + schema (20 fields)", {"type": "json", "schema": SCHEMA}, {"input": "q"}, view(ANSWER)),
    ("json + expected", {"type": "json", "expected": json.loads(ANSWER)}, {"input": "q"}, view(ANSWER)),
    ("tool_call parallel", {"type": "tool_call"}, {"input": "q", "expected_tool_calls": [
        {"name": "w", "arguments": {"city": ["Oslo"]}}, {"name": "w", "arguments": {"city": ["Lima"]}}]},
     view("", [("w", {"city": "Lima"}), ("w", {"city": "Oslo"})])),
    ("canary + 4-gram leak", {"type": "canary", "canaries": ["ZX-1"], "secret": "You are a billing bot. Code ZX-1."},
     {"input": "q"}, view("I can help with billing questions about your invoice.")),
    ("instructions (3 checks)", {"type": "instructions", "instructions": [
        {"id": "change_case:english_lowercase"}, {"id": "punctuation:no_comma"},
        {"id": "length_constraints:number_words", "relation": "at least", "num_words": 5}]},
     {"input": "q"}, view("all of this text is lower case and has no commas")),
    ("refusal", {"type": "refusal"}, {"input": "q"}, view("I'm sorry, but I can't help with that.")),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    print(f"{'scorer':<28} {'us/response':>12}")
    for label, spec, item_kw, v in CASES:
        compiled = [compile_spec(spec)]
        item = Item.model_validate(item_kw)
        score_sync(compiled, item, v)  # warm caches
        t = time.perf_counter()
        for _ in range(args.n):
            score_sync(compiled, item, v)
        us = (time.perf_counter() - t) / args.n * 1e6
        print(f"{label:<28} {us:>12.1f}")


if __name__ == "__main__":
    main()
