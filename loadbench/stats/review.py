"""Human review: a deterministic stratified sample to label, and agreement with the machine verdicts."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from ..config.errors import ConfigError
from ..config.files import read_json, write_atomic, write_json_atomic
from ..pacing.results_log import iter_results
from ..scoring.scores import FAIL, PASS, UNSCORED
from .proportions import cohen_kappa, wilson

LABELS = {"pass": PASS, "p": PASS, "1": PASS, "yes": PASS, "y": PASS, "correct": PASS, "true": PASS,
          "fail": FAIL, "f": FAIL, "0": FAIL, "no": FAIL, "n": FAIL, "incorrect": FAIL, "false": FAIL}
CSV_FIELDS = ["review_id", "tags", "input", "target", "response", "human_label", "notes"]


def _rank(salt: str, candidate: str, seq: int) -> str:
    return hashlib.sha256(f"{salt}|{candidate}|{seq}".encode()).hexdigest()


@dataclass(slots=True)
class Exported:
    count: int
    strata: dict[str, int]
    files: list[Path]


def export_sample(run_dir: Path, n: int, salt: str = "loadbench", out_dir: Path | None = None) -> Exported:
    """Pick about n scored requests, spread over candidate x verdict x tag strata, the same
    ones every time for the same run and salt.  Reviewers get a blinded file (no candidate,
    no machine verdict); review_key.json keeps the mapping for import."""
    if n <= 0:
        raise ConfigError.single("--n", "must be a positive number")
    meta = read_json(run_dir / "run.json") if (run_dir / "run.json").exists() else {}
    tags = meta.get("item_tags") or []
    strata: dict[str, list[tuple[str, Any]]] = {}
    for _line, r, _problem in iter_results(run_dir / "results.jsonl"):
        if r is None or not r.in_window or r.verdict not in (PASS, FAIL, UNSCORED):
            continue
        item_tags = tags[r.item_index] if r.item_index < len(tags) else []
        key = f"{r.candidate}|{r.verdict}|{item_tags[0] if item_tags else '-'}"
        strata.setdefault(key, []).append((_rank(salt, r.candidate, r.seq), r))
    if not strata:
        raise ConfigError.single(str(run_dir), "no scored requests to review (does the eval set have scorers?)")
    for members in strata.values():
        members.sort(key=lambda pair: pair[0])
    # round-robin over strata in a fixed order: every stratum gets one before any gets two
    chosen: list[Any] = []
    depth = 0
    keys = sorted(strata)
    while len(chosen) < n and any(depth < len(strata[k]) for k in keys):
        for k in keys:
            if depth < len(strata[k]) and len(chosen) < n:
                chosen.append((k, strata[k][depth][1]))
        depth += 1
    (out_dir or run_dir).mkdir(parents=True, exist_ok=True)
    out = out_dir or run_dir
    items_path = Path(meta.get("dataset") or "")
    inputs = _load_inputs(items_path) if items_path.is_file() else {}
    rows, key_rows = [], {}
    # shuffled (deterministically), so reviewers cannot tell candidates or verdicts from the order
    for i, (stratum, r) in enumerate(sorted(chosen, key=lambda kr: _rank(salt + ":order", kr[1].candidate, kr[1].seq))):
        review_id = f"r{i + 1:04d}"
        item = inputs.get(r.item_id, {})
        rows.append({
            "review_id": review_id,
            "tags": ",".join(tags[r.item_index]) if r.item_index < len(tags) else "",
            "input": item.get("input", ""), "target": item.get("target", ""),
            "response": r.text or ("; ".join(f'{c["function"]["name"]}({c["function"]["arguments"]})' for c in r.tool_calls or [])),
            "human_label": "", "notes": "",
        })
        key_rows[review_id] = {"candidate": r.candidate, "seq": r.seq, "item_id": r.item_id, "verdict": r.verdict, "stratum": stratum}
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / "review.csv", buf.getvalue().encode())
    write_atomic(out / "review.jsonl", b"".join(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in rows))
    write_json_atomic(out / "review_key.json", {"salt": salt, "run_id": meta.get("run_id"), "rows": key_rows})
    counts: dict[str, int] = {}
    for stratum, _ in chosen:
        counts[stratum] = counts.get(stratum, 0) + 1
    return Exported(len(rows), counts, [out / "review.csv", out / "review.jsonl", out / "review_key.json"])


def _load_inputs(path: Path) -> dict[str, dict[str, str]]:
    from ..config.dataset import load_dataset

    try:
        items = load_dataset(path)
    except ConfigError:
        return {}
    out = {}
    for item in items:
        target = item.target
        out[item.id or ""] = {
            "input": item.prompt_text()[:4000],
            "target": "; or ".join(target) if isinstance(target, list) else (target or ""),
        }
    return out


def _read_labels(path: Path) -> list[tuple[int, str, str]]:
    """(line, review_id, raw label) from a CSV or JSONL file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError.single(str(path), f"cannot read: {exc.strerror}") from None
    text = data.decode("utf-8", "replace")
    out = []
    if path.suffix == ".jsonl" or text.lstrip().startswith("{"):
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise ConfigError.single(str(path), "not valid JSON", line=lineno) from None
            out.append((lineno, str(row.get("review_id", "")), str(row.get("human_label") or "")))
    else:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "review_id" not in reader.fieldnames or "human_label" not in reader.fieldnames:
            raise ConfigError.single(str(path), "needs the columns review_id and human_label", line=1)
        for lineno, row in enumerate(reader, start=2):
            out.append((lineno, row.get("review_id") or "", row.get("human_label") or ""))
    return out


def import_labels(run_dir: Path, labels_path: Path) -> dict[str, Any]:
    key_path = run_dir / "review_key.json"
    if not key_path.exists():
        raise ConfigError.single(str(run_dir), "no review_key.json: run `loadbench review export` first")
    key = read_json(key_path)["rows"]
    problems = []
    pairs: list[tuple[str, str, str]] = []  # (candidate, machine, human)
    for lineno, review_id, raw in _read_labels(labels_path):
        label = raw.strip().casefold()
        if not label:
            continue
        if review_id not in key:
            problems.append((lineno, f"unknown review_id {review_id!r}"))
            continue
        if label not in LABELS:
            problems.append((lineno, f"human_label {raw!r} is not pass or fail"))
            continue
        row = key[review_id]
        pairs.append((row["candidate"], row["verdict"], LABELS[label]))
    if problems:
        from ..config.errors import Problem

        raise ConfigError([Problem(str(labels_path), line, "human_label", msg) for line, msg in problems])
    if not pairs:
        raise ConfigError.single(str(labels_path), "no labelled rows (fill the human_label column with pass or fail)")
    summary = read_json(run_dir / "summary.json") if (run_dir / "summary.json").exists() else {"candidates": {}}
    decided = [(c, m, h) for c, m, h in pairs if m in (PASS, FAIL)]
    agree = sum(1 for _, m, h in decided if m == h)
    confusion = {f"machine_{m}_human_{h}": sum(1 for _, mm, hh in decided if mm == m and hh == h)
                 for m in (PASS, FAIL) for h in (PASS, FAIL)}
    report: dict[str, Any] = {
        "labelled": len(pairs),
        "machine_unscored_labelled": sum(1 for _, m, _ in pairs if m == UNSCORED),
        "agreement": agree / len(decided) if decided else None,
        "agreement_ci": list(wilson(agree, len(decided))[1:]) if decided else None,
        "cohen_kappa": cohen_kappa([(m, h) for _, m, h in decided]),
        "confusion": confusion,
        "candidates": {},
    }
    for name in sorted({c for c, _, _ in pairs}):
        mine = [(m, h) for c, m, h in decided if c == name]
        mp = [h for m, h in mine if m == PASS]
        mf = [h for m, h in mine if m == FAIL]
        ppv = (sum(1 for h in mp if h == PASS) / len(mp)) if mp else None  # human agrees with a machine pass
        false_fail = (sum(1 for h in mf if h == PASS) / len(mf)) if mf else None  # human passes a machine fail
        acc = ((summary.get("candidates", {}).get(name) or {}).get("accuracy") or {}).get("value")
        corrected = None
        if acc is not None and ppv is not None and false_fail is not None:
            corrected = acc * ppv + (1 - acc) * false_fail
        report["candidates"][name] = {
            "labelled": len(mine), "machine_accuracy": acc, "machine_pass_confirmed": ppv,
            "machine_fail_overturned": false_fail, "human_corrected_accuracy": corrected,
            "human_accuracy_on_sample": (sum(1 for _, h in mine if h == PASS) / len(mine)) if mine else None,
        }
    write_json_atomic(run_dir / "review_report.json", report)
    return report
