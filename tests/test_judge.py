"""The judge: position-swap decision logic (pure), the Judge against real HTTP judge servers
(a fair one, a position-biased one, a failing one), and its cost line in the report."""

from __future__ import annotations

import asyncio
import time

import pytest

from router.analysis.render import build_report, render
from router.analysis.report import summarize
from router.ledger.judge import (ORDERS, Judge, decide_verdict, judge_messages, outcome_gain, parse_outcome,
                                 swap_outcome, swap_verdict)
from router.policy import policy_from_dict
from router.providers.tier_client import TierClient
from router.store.records import RequestRecord, ShadowRecord

from .scripted_upstream import ScriptedUpstream, completion


@pytest.mark.parametrize("first,second,final", [
    (True, True, True), (False, False, False), (True, False, None), (False, True, None),
    (None, True, None), (True, None, None), (None, None, None),
])
def test_swap_verdict_needs_both_orders_to_agree(first, second, final):
    assert swap_verdict(first, second) is final


def test_decide_verdict_from_raw_replies():
    v = decide_verdict(["YES.", "**yes**"])
    assert v.verdict is True and v.per_order == (True, True) and v.label == "local" and v.orders == ORDERS
    v = decide_verdict(["NO", "Yes"])  # a judge that prefers one position: disagreement
    assert v.verdict is None and v.per_order == (False, True) and v.label == "unsure"
    v = decide_verdict(["No, answer 1 is better", "NO"])
    assert v.verdict is False and v.label == "cloud"
    v = decide_verdict(["Maybe"], orders=ORDERS[:1])  # single order: its own verdict
    assert v.verdict is None and v.replies == ("Maybe",)
    assert decide_verdict(["YES"], orders=("cloud_first",)).verdict is True
    with pytest.raises(ValueError):
        decide_verdict(["YES", "YES", "NO"], ORDERS + ("x",))
    with pytest.raises(ValueError):
        decide_verdict(["YES"], ORDERS)


@pytest.mark.parametrize("text,outcome", [
    ("BETTER", "better"), ("**Better**, it is complete", "better"), ("same.", "same"), ("Tie", "same"),
    ("WORSE", "worse"), ("No", "worse"), ("YES", None), ("Maybe", None), ("", None),
])
def test_parse_outcome_reads_the_three_way_words(text, outcome):
    assert parse_outcome(text) == outcome


def test_three_way_verdict_needs_both_orders_to_give_it():
    v = decide_verdict(["BETTER", "better."])
    assert (v.outcome, v.verdict, v.per_order_outcome) == ("better", True, ("better", "better"))
    v = decide_verdict(["SAME", "WORSE"])  # the orders disagree on both questions: tie/unsure
    assert (v.outcome, v.verdict, v.label) == (None, None, "unsure")
    v = decide_verdict(["BETTER", "SAME"])  # at least as good in both orders, which of the two unsure
    assert (v.outcome, v.verdict) == (None, True)
    v = decide_verdict(["WORSE", "NO"])  # a binary NO is a worse
    assert (v.outcome, v.verdict) == ("worse", False)
    v = decide_verdict(["YES", "YES"])  # a binary judge: a binary verdict, no three-way one
    assert (v.outcome, v.verdict) == (None, True)
    assert decide_verdict(["same"], orders=ORDERS[:1]).outcome == "same"
    assert swap_outcome("worse", "worse") == "worse" and swap_outcome(None, None) is None
    assert [outcome_gain(o) for o in ("worse", "same", "better")] == [1, 0, -1]
    with pytest.raises(ValueError):
        outcome_gain("sideways")


def test_judge_messages_swap_the_positions_and_ask_about_the_local_answer():
    a = judge_messages("Q?", local="LOCAL", cloud="CLOUD", order="cloud_first")[1]["content"]
    b = judge_messages("Q?", local="LOCAL", cloud="CLOUD", order="local_first")[1]["content"]
    assert a.index("CLOUD") < a.index("LOCAL") and "Is answer 2 better than, as good as, or worse than answer 1" in a
    assert b.index("LOCAL") < b.index("CLOUD") and "Is answer 1 better than, as good as, or worse than answer 2" in b
    assert "BETTER, SAME or WORSE" in a and "BETTER, SAME or WORSE" in b
    with pytest.raises(ValueError):
        judge_messages("Q?", "a", "b", order="sideways")


def _policy(url: str) -> object:
    return policy_from_dict({"tiers": {
        "local": {"model": "slm-local/smollm2"},
        "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": url},
        "judge": {"model": "openai/judge", "api_key": "sk-test", "api_base": url,
                  "price": {"input_usd_per_mtok": 2.0, "output_usd_per_mtok": 10.0}}},
        "shadow": {"rate": 1.0, "judge_tier": "judge"}})


def _prefers_first_position(body):
    """A judge with pure position bias: always prefers answer 1, whatever it says."""
    asks_about_second = "Is answer 2 better" in body["messages"][-1]["content"]
    return completion("WORSE" if asks_about_second else "BETTER",
                      usage={"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101})


def _fair(body):
    """A judge that prefers the answer saying 4 to 'What is 2+2?'."""
    text = body["messages"][-1]["content"]
    first = text.split("Answer 1:\n", 1)[1].split("\n\nAnswer 2:", 1)[0]
    local_first = "Is answer 1 better" in text
    local = first if local_first else text.split("Answer 2:\n", 1)[1].split("\n\nIs answer", 1)[0]
    return completion("SAME" if local.strip() == "4" else "WORSE",
                      usage={"prompt_tokens": 50, "completion_tokens": 2, "total_tokens": 52})


@pytest.mark.slow
def test_judge_over_http_swaps_orders_and_prices_its_tokens():
    biased, fair, broken = ScriptedUpstream(_prefers_first_position).start(), ScriptedUpstream(_fair).start(), \
        ScriptedUpstream(lambda body: (500, {"error": {"message": "down"}})).start()
    try:
        async def run():
            out = {}
            for name, server in (("biased", biased), ("fair", fair), ("broken", broken)):
                policy = _policy(server.url)
                judge = Judge(TierClient(policy), "judge", policy.tiers["judge"], swap=True)
                out[name] = [await judge.judge("What is 2+2?", local, "4") for local in ("4", "five")]
            policy = _policy(biased.url)
            single = Judge(TierClient(policy), "judge", policy.tiers["judge"], swap=False)
            out["single"] = await single.judge("What is 2+2?", "five", "4")
            return out

        out = asyncio.run(run())
        # position bias: the two orders disagree on every pair, so no verdict (tie/unsure)
        assert [o.verdict.verdict for o in out["biased"]] == [None, None]
        assert out["biased"][0].verdict.replies == ("WORSE", "BETTER")
        assert [o.verdict.outcome for o in out["biased"]] == [None, None]
        assert out["biased"][0].prompt_tokens == 200 and out["biased"][0].completion_tokens == 2
        assert out["biased"][0].cost_usd == pytest.approx((2.0 * 200 + 10.0 * 2) / 1e6)
        # one order only: the biased judge's verdict is whatever its position says (wrong here)
        assert out["single"].verdict.verdict is False and len(biased.received) == 5
        # a fair judge: a verdict, the same in both orders
        assert [o.verdict.verdict for o in out["fair"]] == [True, False]
        assert out["fair"][1].verdict.per_order == (False, False)
        assert [o.verdict.outcome for o in out["fair"]] == ["same", "worse"]
        # failed calls: no verdict, the errors kept, nothing billed
        assert out["broken"][0].verdict is None and len(out["broken"][0].errors) == 2
        assert out["broken"][0].prompt_tokens == 0
    finally:
        for s in (biased, fair, broken):
            s.stop()


def test_report_has_a_judge_cost_line():
    now = time.time()
    records = [RequestRecord(f"r{i}", now + i, requested_model="auto", routed_tier="local", tier="local", local=True,
                             counterfactual_usd=0.001) for i in range(3)]
    replies = [{"order": "cloud_first", "reply": "YES", "verdict": True},
               {"order": "local_first", "reply": "NO", "verdict": False}]
    shadows = [
        ShadowRecord("r0", now, tier="cloud", model="m", local_text="a", cloud_text="b", cost_usd=0.0002,
                     similarity=0.9, agrees=True, judge_model="openai/judge", judge_verdict=None,
                     judge_cost_usd=0.00003, judge_replies=replies, judge_prompt_tokens=120,
                     judge_completion_tokens=2),
        ShadowRecord("r1", now, tier="cloud", model="m", local_text="a", cloud_text="b", cost_usd=0.0002,
                     similarity=0.5, agrees=False, judge_model="openai/judge", judge_verdict=False,
                     judge_cost_usd=0.00002, judge_replies=replies[:1], judge_prompt_tokens=80,
                     judge_completion_tokens=1),
    ]
    s = summarize(records, shadows)
    assert (s.judge_samples, s.judge_calls, s.judge_unsure) == (2, 3, 1)
    assert (s.judge_prompt_tokens, s.judge_completion_tokens) == (200, 3)
    assert s.judge_usd == pytest.approx(0.00005) and s.shadow_usd == pytest.approx(0.00045)
    md = render(build_report(records, shadows, source="test"), "md")
    line = next(l for l in md.splitlines() if l.startswith("| judge |"))
    assert line.split(" | ")[1:5] == ["3", "200", "3", "$0.000050"]
    assert "2 samples, 1 tie/unsure" in line
    shadow_line = next(l for l in md.splitlines() if l.startswith("| shadow sampling (extra calls)"))
    assert "$0.000400" in shadow_line  # the cloud calls alone; the judge has its own line
    csv_text = render(build_report(records, shadows, source="test"), "csv")
    header, row = csv_text.splitlines()[:2]
    assert dict(zip(header.split(","), row.split(",")))["judge_prompt_tokens"] == "200"


@pytest.mark.slow
def test_server_judges_shadow_samples_in_both_orders_and_reports_the_judge_line(tmp_path):
    """The real server: every locally served request is shadowed, a position-biased judge
    (a real HTTP server) is asked in both orders, the orders disagree, so every sample is
    tie/unsure; `report` prices the judge's tokens on its own line."""
    import json
    import sqlite3

    from typer.testing import CliRunner

    from router.cli import app

    from .fake_openai import FakeOpenAI
    from .proxy_process import ProxyProcess

    local, cloud = FakeOpenAI(answer="Paris.").start(), FakeOpenAI(answer="The capital is Paris.").start()
    judge = ScriptedUpstream(_prefers_first_position).start()
    policy = {
        "tiers": {"local": {"model": "openai/local-model", "api_key": "sk-test", "api_base": local.url,
                            "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
                  "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": cloud.url},
                  "judge": {"model": "openai/judge", "api_key": "sk-test", "api_base": judge.url,
                            "price": {"input_usd_per_mtok": 2.0, "output_usd_per_mtok": 10.0}}},
        "routing": {"classifier": {"threshold": 1.0}},  # every request served locally
        "escalation": {"enabled": False},
        "shadow": {"rate": 1.0, "judge_tier": "judge"},
    }
    proxy = ProxyProcess(policy, tmp_path).start()
    try:
        import httpx

        for q in ("What is the capital of France?", "Name the capital of France.", "France's capital?"):
            r = httpx.post(proxy.url + "/v1/chat/completions", timeout=60,
                           json={"model": "auto", "messages": [{"role": "user", "content": q}]})
            assert r.status_code == 200 and r.headers["x-router-tier"] == "local"
        deadline = time.time() + 60
        while len(judge.received) < 6 and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # the samples are written after the judge answers
        assert len(judge.received) == 6  # three samples, two orders each
        db = sqlite3.connect(proxy.log_path)
        rows = db.execute("SELECT judge_verdict, judge_replies, judge_prompt_tokens, judge_completion_tokens, "
                          "judge_cost_usd FROM shadows").fetchall()
        assert len(rows) == 3
        for verdict, replies, prompt_tokens, completion_tokens, cost in rows:
            assert verdict is None  # the orders disagree: tie/unsure
            assert [(x["order"], x["reply"]) for x in json.loads(replies)] == [("cloud_first", "WORSE"),
                                                                                ("local_first", "BETTER")]
            assert (prompt_tokens, completion_tokens) == (200, 2)
            assert cost == pytest.approx((2.0 * 200 + 10.0 * 2) / 1e6)
        out = CliRunner().invoke(app, ["report", "--log", str(proxy.log_path), "--format", "md"])
        assert out.exit_code == 0, out.output
        line = next(l for l in out.output.splitlines() if l.startswith("| judge |"))
        assert line.split(" | ")[1:5] == ["6", "600", "6", "$0.001260"] and "3 samples, 3 tie/unsure" in line
    finally:
        proxy.stop()
        for s in (local, cloud, judge):
            s.stop()
