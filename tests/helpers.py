"""Small builders shared by the scorer tests."""

from loadbench.config.dataset import Item
from loadbench.scoring.scores import ResponseView, ToolCall


def item(**kw):
    kw.setdefault("input", "question?")
    return Item.model_validate(kw)


def view(text="", *, tool_calls=None, refusal=None, finish_reason="stop", token_source="server", cost=0.0,
         latency=None, ttft=None, tpot=None):
    import json

    calls = []
    for name, args in tool_calls or []:
        raw = args if isinstance(args, str) else json.dumps(args)
        try:
            parsed, err = json.loads(raw), None
        except ValueError as exc:
            parsed, err = None, str(exc)
        calls.append(ToolCall(name, raw, parsed, err))
    return ResponseView(text=text, raw_text=text, tool_calls=calls, refusal=refusal, finish_reason=finish_reason,
                        input_tokens=10, output_tokens=5, token_source=token_source, cost_usd=cost,
                        ttft_s=ttft, latency_s=latency, tpot_s=tpot)


def run(spec, it, v):
    from loadbench.scoring.registry import compile_spec, score_sync

    compiled = compile_spec(spec)
    scores, pending = score_sync([compiled], it, v)
    assert not pending
    return scores[0]
