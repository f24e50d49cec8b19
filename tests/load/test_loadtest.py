"""The load driver itself: a short run with a few learners against a real server.

It asserts the report's structure, that every endpoint's numbers are consistent with the samples
it counted (recomputed here from the JSON), and that nothing failed. Latency is not asserted (the
machine is shared while the suite runs): ``--p99-ms`` is set out of reach.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import loadtest


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert loadtest.percentile(values, 0.5) == 50.0
    assert loadtest.percentile(values, 0.99) == 99.0
    assert loadtest.percentile(values, 1.0) == 100.0
    assert loadtest.percentile([7.0], 0.99) == 7.0


def test_a_short_load_run_reports_every_endpoint_without_errors(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    args = [
        "--learners", "5",
        "--duration", "8",
        "--think-min", "0.2",
        "--think-max", "1.0",
        "--p99-ms", "1e9",
        "--json", str(out),
    ]  # fmt: skip
    # Its own thread, as on the command line: an earlier test in this process (Playwright's sync
    # API) may hold an event loop in the main thread, and asyncio.run() refuses to nest.
    with ThreadPoolExecutor(max_workers=1) as pool:
        code = pool.submit(loadtest.main, args).result()
    report = json.loads(out.read_text())
    assert code == 0, report
    assert report["errors"] == 0
    assert report["passed"] is True
    assert report["config"]["learners"] == 5
    endpoints = {e["endpoint"]: e for e in report["endpoints"]}
    # Every learner starts on a page, with its assets.
    assert any(name in endpoints for name in ("GET /", "GET /lessons/{slug}"))
    assert "GET /static/{path}" in endpoints
    assert report["requests"] == sum(e["count"] for e in endpoints.values())
    for e in endpoints.values():
        assert e["count"] >= 1
        assert 0 <= e["p50_ms"] <= e["p95_ms"] <= e["p99_ms"] <= e["max_ms"]
        assert e["per_s"] == e["count"] / report["seconds"]
        assert e["interactive"] is (e["endpoint"] not in loadtest.NOT_INTERACTIVE)
    memory = report["memory"]
    assert 0 < memory["server_rss_start"] <= memory["server_rss_peak"]
    assert memory["server_rss_end"] <= memory["server_rss_peak"]
    assert memory["total_pss_peak"] >= memory["total_pss_start"] > 0
    assert memory["processes_peak"] >= 1


def test_highlighted_code_is_cached_within_a_bound() -> None:
    """The load test's first fix: Pygments ran on every render; now a bounded cache answers,
    with the very same HTML Pygments makes."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    from app.web import templating

    source = "x = torch.ones(2, requires_grad=True)\ny = (x * x).sum()\n"
    expected = highlight(source, PythonLexer(), HtmlFormatter(cssclass="code", wrapcode=True))
    assert str(templating.code_block(source)) == expected
    hits = templating._highlighted.cache_info().hits
    assert str(templating.code_block(source)) == expected
    assert templating._highlighted.cache_info().hits == hits + 1
    assert templating._highlighted.cache_info().maxsize == templating.CODE_CACHE_SIZE
    huge = "x = 1\n" * (templating.CODE_CACHE_CHARS // 6 + 1)
    size = templating._highlighted.cache_info().currsize
    assert "x" in templating.code_block(huge)
    assert templating._highlighted.cache_info().currsize == size  # too long to keep


def test_a_short_attack_run_reports_every_attack_and_no_5xx(tmp_path: Path) -> None:
    """``--attack``: every attack of bench/attack.py is sent and answered without a 5xx; the
    report carries the attack's verdict beside the learners'. Latency is not asserted here."""
    out = tmp_path / "attack.json"
    args = [
        "--attack",
        "--learners", "3",
        "--duration", "10",
        "--attackers", "2",
        "--streams", "6",
        "--half-open", "4",
        "--p99-ms", "1e9",
        "--json", str(out),
        # Short request deadlines, so half-sent requests are dropped within the run.
        "--env", "EXPLORER_HEADER_TIMEOUT_SECONDS=1",
        "--env", "EXPLORER_BODY_TIMEOUT_SECONDS=1",
    ]  # fmt: skip
    with ThreadPoolExecutor(max_workers=1) as pool:
        code = pool.submit(loadtest.main, args).result()
    report = json.loads(out.read_text())
    attack = report["attack"]
    assert 0.9 <= attack["half_open_dropped_after_s_max"] <= 5.0
    assert code == 0, attack
    assert attack["server_errors"] == 0 and attack["memory_ok"] is True
    assert report["passed"] is True
    sent = set(attack["attacks"])
    # Two attackers go round the list from different places: in 10 s each reaches several.
    assert {"streams", "half_open"} <= sent and len(sent) >= 5, sent
    for name, outcome in attack["attacks"].items():
        statuses = set(outcome["statuses"])
        assert not any(s.startswith("5") for s in statuses), (name, statuses)
    assert attack["streams_opened"].get("200", 0) >= 1
    assert attack["server_rss_peak_mb"] == round(report["memory"]["server_rss_peak"] / 1024**2, 1)
