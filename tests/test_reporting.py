"""`slm-router report` (md, html, json, csv; --by; --since/--until) and `slm-router replay`
through the real CLI on the log of ``tests/accounting_log.py`` written to SQLite."""

from __future__ import annotations

import base64
import csv
import io
import json
import struct
from html.parser import HTMLParser

import pytest
import yaml
from typer.testing import CliRunner

from router.cli import app
from router.analysis.report import summarize
from router.store.sqlite import SQLiteStore

from .accounting_log import POLICY_DICT, build_records, build_shadows

runner = CliRunner()


@pytest.fixture(scope="module")
def log_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "log.sqlite3"
    store = SQLiteStore(path)
    for r in build_records():
        store.record(r)
    for s in build_shadows():
        store.record_shadow(s)
    store.close()
    return path


@pytest.fixture(scope="module")
def expected():
    return summarize(build_records(), build_shadows())


def _run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_json_report_matches_the_summary(log_path, expected):
    out = json.loads(_run("report", "--log", str(log_path), "--format", "json"))
    assert out["requests"] == 6 and out["unpriced_calls"] == 1
    assert out["actual_usd"] == pytest.approx(expected.actual_usd, abs=1e-15)
    assert out["savings_usd"] == pytest.approx(expected.savings_usd, abs=1e-15)
    assert out["escalation_tax_usd"] == pytest.approx(0.01)
    assert out["quality"]["estimate"] == pytest.approx(0.8)
    assert [d["day"] for d in out["days"]] == ["2026-11-01", "2026-11-02"]
    assert {t["tier"] for t in out["latency_by_tier"]} == {"local", "cloud", "mystery"}
    assert json.loads(_run("report", "--log", str(log_path), "--json")) == out  # the older flag still works


def test_time_windows(log_path):
    day2 = json.loads(_run("report", "--log", str(log_path), "--format", "json", "--since", "2026-11-02"))
    assert day2["requests"] == 1 and day2["actual_usd"] == pytest.approx(0.003)
    assert day2["shadow_usd"] == pytest.approx(0.00008)
    day1 = json.loads(_run("report", "--log", str(log_path), "--format", "json", "--until", "2026-11-02T00:00"))
    assert day1["requests"] == 5
    narrow = json.loads(_run("report", "--log", str(log_path), "--format", "json",
                             "--since", "2026-11-01T10:00:30", "--until", "2026-11-01T10:02:30"))
    assert narrow["requests"] == 2 and narrow["escalated"] == 1  # r2 and r3


def test_csv_grouped_rows_add_up(log_path, expected):
    out = _run("report", "--log", str(log_path), "--format", "csv", "--by", "route")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["group"] for r in rows] == ["cloud", "failed", "forced mystery", "local", "local -> cloud (escalated)"]
    assert sum(float(r["actual_usd"]) for r in rows) == pytest.approx(expected.actual_usd, abs=1e-12)
    esc = next(r for r in rows if r["group"].endswith("(escalated)"))
    assert float(esc["escalation_tax_usd"]) == pytest.approx(0.01) and esc["escalation_tax_prompt_tokens"] == "12"
    single = list(csv.DictReader(io.StringIO(_run("report", "--log", str(log_path), "--format", "csv"))))
    assert [r["group"] for r in single] == ["all"] and int(single[0]["requests"]) == 6


def test_markdown_report_flags_unknown_price_and_shows_lines(log_path):
    md = _run("report", "--log", str(log_path), "--format", "md", "--by", "api-key")
    assert md.startswith("# slm-router cost and quality report")
    assert "no known price" in md and "acme/unknown-model-v9" in md
    assert "escalation tax" in md and "self-check" in md and "shadow sampling" in md
    assert "estimated quality retention | 80.0% (95% CI 80.0%-80.0%)" in md
    assert "## By api-key" in md and "## Per day (UTC)" in md and "## Latency per tier" in md


def test_terminal_table(log_path):
    out = _run("report", "--log", str(log_path), "--by", "tier")
    assert "savings" in out and "all-cloud cost" in out and "flag" in out


@pytest.mark.parametrize("args,message", [
    (["--by", "colour"], "--by must be one of"),
    (["--format", "pdf"], "--format must be one of"),
    (["--since", "yesterday"], "--since must be an ISO date"),
    (["--since", "2026-11-02", "--until", "2026-11-01"], "--until must be later"),
])
def test_bad_options_exit_2_with_a_message(log_path, args, message):
    result = runner.invoke(app, ["report", "--log", str(log_path), *args])
    assert result.exit_code == 2 and message in result.output


def test_missing_log_exits_2(tmp_path):
    result = runner.invoke(app, ["report", "--log", str(tmp_path / "none.sqlite3")])
    assert result.exit_code == 2 and "no request log" in result.output


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_html_report_is_self_contained_with_embedded_plots(log_path, tmp_path):
    out = tmp_path / "report.html"
    _run("report", "--log", str(log_path), "--format", "html", "--by", "day", "--out", str(out))
    html = out.read_text(encoding="utf-8")
    parser = _Collector()
    parser.feed(html)
    parser.close()
    imgs = [a for t, a in parser.tags if t == "img"]
    assert len(imgs) == 5  # cost per bucket, cumulative savings, shares, latency, shadow agreement
    for a in imgs:
        assert a["src"].startswith("data:image/png;base64,") and a.get("alt")
        width, height = _png_size(base64.b64decode(a["src"].split(",", 1)[1]))
        assert width >= 400 and height >= 200
    assert not [t for t, _ in parser.tags if t in ("script", "link", "iframe")]
    assert not any(v and v.startswith(("http:", "https:", "//")) for _, a in parser.tags for v in a.values())
    assert sum(t == "table" for t, _ in parser.tags) >= 4
    text = " ".join(parser.text)
    assert "Quality retention" in text and "80.0%" in text and "no known price" in text


def test_replay_cli_same_policy_and_a_what_if(log_path, tmp_path):
    same = tmp_path / "same.yaml"
    same.write_text(yaml.safe_dump({**POLICY_DICT, "log": {"store": "sqlite", "path": str(log_path)}}))
    out = json.loads(_run("replay", "--policy", str(same), "--format", "json"))
    assert out["decisions_changed"] == 0 and out["escalations_changed"] == 0
    assert out["projected"]["cost_usd"] == pytest.approx(out["actual"]["cost_usd"], abs=1e-15)
    assert out["projected"]["local_share"] == out["actual"]["local_share"] == pytest.approx(0.4)
    cloudy = tmp_path / "cloudy.yaml"
    cloudy.write_text(yaml.safe_dump({**POLICY_DICT, "routing": {"classifier": {"threshold": 0.0}}}))
    md = _run("replay", "--policy", str(cloudy), "--log", str(log_path), "--format", "md")
    assert "| served locally | 40.0% | 0.0% |" in md and "| first tier changed |  | 3 |" in md
    table = _run("replay", "--policy", str(cloudy), "--log", str(log_path))
    assert "projected" in table and "quality retention" in table
    bad = runner.invoke(app, ["replay", "--policy", str(tmp_path / "missing.yaml"), "--log", str(log_path)])
    assert bad.exit_code == 2 and "cannot read policy file" in bad.output


def test_time_buckets_of_the_plots():
    from router.analysis.render.plots import bucket_size, buckets

    assert bucket_size(0, 3 * 86_400) == (86_400, "day")
    assert bucket_size(0, 3_600) == (600, "10 minutes")
    assert bucket_size(0, 30) == (60, "minute")
    rows = buckets(build_records(), 86_400)
    assert len(rows) == 2 and [b.requests for b in rows] == [4, 1]  # r5 failed: not plotted
    assert rows[0].actual_usd == pytest.approx(0.005 + 0.0119 + 0.0022) and rows[1].actual_usd == pytest.approx(0.003)
    assert (rows[0].local, rows[0].escalated) == (1, 1)
    hourly = buckets(build_records(), 3_600)
    assert len(hourly) == 24 and sum(b.requests for b in hourly) == 5  # empty hours in between are kept
