"""The bad-input sweep (``bench/bad_inputs.py``, the list ``bench/load.py`` also sends) through
the real server: every kind gets a 4xx in its API's own error JSON and exactly one log row."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import httpx
import pytest

from bench.bad_inputs import BAD_INPUTS, answer_problem, send_raw

from .proxy_process import ProxyProcess
from .scripted_upstream import ScriptedUpstream

pytestmark = pytest.mark.slow

ENDPOINTS = {"/v1/chat/completions", "/v1/messages", "/v1/messages/count_tokens", "/v1/responses", "/v1/route"}


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    up = ScriptedUpstream().start()
    policy = {"tiers": {"local": {"model": "openai/smollm2", "api_base": up.url, "api_key": "sk-local",
                                  "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
                        "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-test", "api_base": up.url}}}
    proc = ProxyProcess(policy, tmp_path_factory.mktemp("bad-inputs")).start()
    yield proc, up
    proc.stop()
    up.stop()


def _rows(proc: ProxyProcess) -> int:
    con = sqlite3.connect(proc.log_path)
    try:
        return con.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    finally:
        con.close()


def test_the_sweep_covers_every_endpoint_with_65_kinds():
    names = [k.name for k in BAD_INPUTS]
    assert len(names) == len(set(names)) and len(names) >= 65
    assert {k.path for k in BAD_INPUTS} >= ENDPOINTS


async def _send(proc: ProxyProcess, kind) -> tuple[int, bytes]:
    if kind.raw is not None:
        return await send_raw("127.0.0.1", proc.port, kind.raw)
    async with httpx.AsyncClient(base_url=proc.url, timeout=60) as client:
        r = await client.request(kind.method, kind.path, content=kind.body or None, headers=kind.request_headers())
        return r.status_code, r.content


def test_every_bad_input_is_a_logged_4xx_in_its_apis_shape(proxy):
    proc, up = proxy
    before_rows, before_calls = _rows(proc), len(up.received)
    problems = {}
    for kind in BAD_INPUTS:  # one at a time: a failure names its kind
        status, body = asyncio.run(_send(proc, kind))
        problem = answer_problem(kind, status, body)
        if problem:
            problems[kind.name] = problem
    assert not problems, problems
    assert len(up.received) == before_calls, "a bad request reached a tier"
    deadline = time.time() + 15
    while _rows(proc) < before_rows + len(BAD_INPUTS) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # a second row per request would come now
    assert _rows(proc) - before_rows == len(BAD_INPUTS)
    con = sqlite3.connect(proc.log_path)
    try:
        statuses = [r[0] for r in con.execute("SELECT status FROM requests ORDER BY ts DESC LIMIT ?", (len(BAD_INPUTS),))]
    finally:
        con.close()
    assert set(statuses) == {"error"}
