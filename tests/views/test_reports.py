"""Reports: markdown content, and the HTML opened in headless Chromium (charts render, no console errors)."""

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from loadbench.views.pages import run_markdown, sweep_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(not CHROMIUM and not os.environ.get("CI"), reason="Debian chromium is installed by scripts/test")


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) into rows of raw pixels."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            bpp = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def screenshot(html: Path, out: Path, tmp: Path, size: str = "1100,2200") -> str:
    assert CHROMIUM, "install chromium (scripts/test does)"
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp / 'profile'}",
         "--enable-logging=stderr", "--v=0", f"--window-size={size}", f"--screenshot={out}", html.as_uri()],
        capture_output=True, text=True, timeout=90,
    )
    assert out.exists(), proc.stderr[-2000:]
    return proc.stderr


def colourful_pixels(path: Path) -> int:
    """Pixels that are clearly coloured (chart lines and bars), not white/grey text."""
    width, _height, rows = png_pixels(path)
    bpp = len(rows[0]) // width
    count = 0
    for row in rows[::2]:
        for i in range(0, len(row), bpp * 2):
            r, g, b = row[i], row[i + 1], row[i + 2]
            if max(r, g, b) - min(r, g, b) > 80:
                count += 1
    return count


def test_markdown_report_has_the_decision_and_the_table(demo_run):
    import json

    summary = json.loads((demo_run / "summary.json").read_text())
    md = run_markdown(summary)
    assert md.startswith("## loadbench run") and "| accuracy [95% CI] |" in md and "latency p95" in md
    assert summary["decision"]["summary"] in md
    assert (demo_run / "report.md").read_text() == md


@needs_chromium
def test_run_report_renders_in_chromium(demo_run, tmp_path):
    html = demo_run / "report.html"
    text = html.read_text()
    # offline and self-contained: no fetch, no external script; the one inline script filters the tables
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "") and "<script src" not in text
    assert text.count("<script") == 1 and text.count("<svg") >= 10
    stderr = screenshot(html, tmp_path / "run.png", tmp_path)
    console = [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    assert colourful_pixels(tmp_path / "run.png") > 2000  # the charts drew lines and bars


def test_every_failed_item_is_findable_with_its_failing_scorer(demo_run):
    """The drill-down's promise: each failed or unscored (candidate, item) of the window is in
    report.html, in a row naming the candidate, the item and the scorer that failed it."""
    import html as html_lib
    import json
    import re

    text = (demo_run / "report.html").read_text()
    rows = re.findall(r'<tr data-candidate="([^"]*)" data-scorers="([^"]*)".*?<td class="id">([^<(]*)', text, flags=re.S)
    found = {(html_lib.unescape(c), html_lib.unescape(i).strip()): set(html_lib.unescape(sc).split()) for c, sc, i in rows}
    expected = 0
    for line in (demo_run / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if not r["in_window"] or r["verdict"] not in ("fail", "unscored") or r["phase"] == "tool":
            continue
        expected += 1
        scorers = found.get((r["candidate"], r["item_id"]))
        assert scorers is not None, (r["candidate"], r["item_id"])
        bad = {s["name"] for s in r["scores"] if s["status"] in ("fail", "unscored")}
        assert bad & scorers, (r["item_id"], bad, scorers)
    assert expected > 10 and f"{expected} (candidate, item) records" in text


@needs_chromium
async def test_drill_down_filters_and_every_chart_draws(demo_run, tmp_path):
    """In Chromium: no console errors; every chart is drawn (none empty, each with coloured pixels in
    its own screenshot: a broken or blank chart fails here); the filters narrow the table."""
    from tests.cdp import Browser

    async with Browser(CHROMIUM, tmp_path / "profile") as b:
        await b.call("Emulation.setDeviceMetricsOverride", session=True, width=1200, height=900, deviceScaleFactor=1, mobile=False)
        await b.goto((demo_run / "report.html").as_uri())
        assert not [c for c in b.console if "rror" in c or "exception" in c], b.console
        titles = await b.eval("Array.from(document.querySelectorAll('svg[data-chart]')).map(s => s.getAttribute('data-chart'))")
        empty = await b.eval("Array.from(document.querySelectorAll('svg [data-empty]')).length")
        assert len(titles) >= 12 and empty == 0, titles
        for needed in ("Latency percentile spectrum", "latency over time", "throughput and errors", "Accuracy by tag",
                       "Accuracy by prompt length", "Accuracy vs cost per correct", "Quality failures by class", "server KV-cache usage"):
            assert any(needed in t for t in titles), needed
        for i, box in enumerate(await b.boxes("svg[data-chart]")):
            shot = tmp_path / f"chart{i}.png"
            shot.write_bytes(await b.screenshot(box))
            assert colourful_pixels(shot) > 40, titles[i]
        total = await b.eval("document.querySelectorAll('#failed-table tbody tr').length")
        shown = lambda: b.eval("Array.from(document.querySelectorAll('#failed-table tbody tr')).filter(r => !r.hidden).length")
        assert await shown() == total > 10
        await b.eval("(() => { const s = document.querySelector('[data-filter=candidate]'); s.value = 'small-fast'; "
                     "s.dispatchEvent(new Event('change')); })()")
        only_small = await shown()
        assert 0 < only_small < total
        assert await b.eval("Array.from(document.querySelectorAll('#failed-table tbody tr')).filter(r => !r.hidden)"
                            ".every(r => r.getAttribute('data-candidate') === 'small-fast')")
        await b.eval("(() => { const s = document.querySelector('[data-filter=classes]'); s.value = 'match.mismatch'; "
                     "s.dispatchEvent(new Event('change')); })()")
        assert 0 < await shown() <= only_small
        assert "shown" in await b.eval("document.getElementById('failed-count').textContent")
        await b.eval("document.querySelector('#failed-table th[data-sort=num]').click()")  # sorting works without errors
        assert not [c for c in b.console if "rror" in c or "exception" in c], b.console


@needs_chromium
def test_sweep_report_renders_in_chromium(tmp_path):
    curve = [{"offered_qps": q, "repeat": 0, "passed": q < 40, "reasons": [] if q < 40 else ["SLO: latency p95 <= 300ms"],
              "achieved_qps": q, "throughput_rps": q, "latency_s": {"p50": 0.1, "p90": 0.1 + q / 400, "p95": 0.1 + q / 300, "p99": 0.1 + q / 200, "count": 100},
              "ttft_s": {"p50": 0.1, "p95": 0.1, "p99": 0.1}, "error_ratio": 0.0, "accuracy": 0.9 - q / 1000, "accuracy_attempted": 0.9,
              "goodput_rps": q * 0.9, "goodput_fraction": 0.9, "cost_per_task": 0.001, "cost_per_correct": 0.0011, "truncated": 0,
              "schedule_lag_p99_s": 0.001, "run_dir": "x"} for q in (10, 20, 30, 40, 50)]
    result = {"sweep_id": "s1", "slo": ["latency p95 <= 300ms"], "arrival": "constant",
              "candidates": {"a": {"max_sustainable_qps": 30, "how": "explicit ladder", "knee_qps": 40, "curve": curve,
                                   "projection": {"replicas": 4, "peak_qps": 100, "headroom": 0.3,
                                                  "api": {"cost_per_task": 0.001, "cost_per_correct": 0.0011, "monthly_usd": 30.0},
                                                  "tasks_per_day": 1000}}}}
    html = tmp_path / "sweep.html"
    html.write_text(sweep_html(result))
    stderr = screenshot(html, tmp_path / "sweep.png", tmp_path, "1100,1800")
    assert not [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert colourful_pixels(tmp_path / "sweep.png") > 1000


def test_a_hostile_response_is_text_in_the_drill_down(demo_run):
    """A candidate's answer is data: markup in it is escaped, never run (autoescaping templates)."""
    import json

    from loadbench.views.pages import run_html
    from loadbench.views.report_data import FailedRow, ReportData

    summary = json.loads((demo_run / "summary.json").read_text())
    evil = '<img src=x onerror="alert(1)"></td><script>alert(2)</script>'
    row = FailedRow("small-fast", 'id"><b>x', 0, 0, "fail", ['t"><i>'],
                    [{"name": "match", "status": "fail", "error_class": "match.mismatch", "explanation": evil}], evil, evil, 0.1, 0.0)
    html = run_html(summary, ReportData([row], 1, [], 0, {}, 0.0))
    assert "<script>alert(2)" not in html and "<img src=x" not in html and 'id"><b>' not in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert html.count("<script>") == 1  # only the page's own
