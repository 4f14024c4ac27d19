"""Prometheus metrics (``GET /metrics``), derived from each logged request.

Correct with several uvicorn workers through prometheus-client's multiprocess mode: when
``PROMETHEUS_MULTIPROC_DIR`` is set (``slm-router serve --workers N`` sets it to a fresh
folder), every worker writes its samples to memory-mapped files there and a scrape of any
worker sums all of them. Each replica is scraped on its own and Prometheus adds them up,
as usual for replicated services. Counters are kept per process rather than in Redis on
purpose: metrics must keep working, and show the outage, while Redis is down.

Metric names (counters get prometheus-client's ``_total`` suffix):

- ``slm_router_requests_total{tier,status}``: logged requests by answering tier
  (``none`` when no tier answered) and status (``ok``, ``error``, ``partial``, ``cancelled``).
- ``slm_router_escalations_total``: requests whose local answer was escalated to the cloud.
- ``slm_router_escalations_capped_total``: local answers that failed their check but were
  kept because escalating would have exceeded ``escalation.max_share``.
- ``slm_router_cache_hits_total{kind}``: requests answered from the cache (``exact``, ``semantic``).
- ``slm_router_budget_rejections_total{action}``: cloud calls refused by a budget, then
  answered locally (``local``) or with 429 (``reject``).
- ``slm_router_rate_limited_total``: requests refused with 429 by a rate limit.
- ``slm_router_request_latency_seconds{tier}``: request wall time (histogram, seconds).
- ``slm_router_cost_usd_total{tier}``: USD spent on model calls per tier.
- ``slm_router_counterfactual_usd_total``: USD the same requests would have cost on the cloud tier.
- ``slm_router_local_worker_crashes_total{model,outcome}``: in-process SLM worker processes
  that died (a signal such as SIGSEGV, or an exit) while serving, by litellm model string
  (``slm-local/smollm2``) and what the pool did: ``restarted`` a new worker, or ``stopped``
  (``runtime.max_crashes`` deaths within ``runtime.crash_window_s``: the tier is out until
  the server restarts).
- ``slm_router_local_worker_restarts_total{model}``: worker processes started again after a crash.
"""

from __future__ import annotations

import logging
import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

from ..store.records import RequestRecord

__all__ = ["observe", "budget_rejection", "rate_limited", "escalation_capped", "local_worker_crash", "render", "CONTENT_TYPE_LATEST", "MULTIPROC_ENV"]

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter("slm_router_requests", "Logged chat requests by answering tier and status.", ["tier", "status"])
ESCALATIONS = Counter("slm_router_escalations", "Requests whose local answer was escalated to the cloud tier.")
ESCALATIONS_CAPPED = Counter("slm_router_escalations_capped",
                             "Failing local answers kept because escalating would exceed escalation.max_share.")
CACHE_HITS = Counter("slm_router_cache_hits", "Requests answered from the response cache.", ["kind"])
BUDGET_REJECTIONS = Counter("slm_router_budget_rejections", "Cloud calls refused by a tenant budget.", ["action"])
RATE_LIMITED = Counter("slm_router_rate_limited", "Requests refused by a tenant rate limit.")
LATENCY = Histogram(
    "slm_router_request_latency_seconds", "Request wall time by answering tier (seconds).", ["tier"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
COST = Counter("slm_router_cost_usd", "USD spent on model calls, by tier.", ["tier"])
COUNTERFACTUAL = Counter("slm_router_counterfactual_usd", "USD the logged requests would have cost on the cloud tier.")
LOCAL_WORKER_CRASHES = Counter("slm_router_local_worker_crashes",
                               "In-process SLM worker processes that died, by model and what the pool did.",
                               ["model", "outcome"])
LOCAL_WORKER_RESTARTS = Counter("slm_router_local_worker_restarts",
                                "In-process SLM worker processes started again after a crash.", ["model"])


def observe(record: RequestRecord) -> None:
    """Count one priced, logged request. Never raises."""
    try:
        tier = record.tier or "none"
        REQUESTS.labels(tier=tier, status=record.status).inc()
        LATENCY.labels(tier=tier).observe(max(0.0, record.latency_ms) / 1000)
        if record.escalated:
            ESCALATIONS.inc()
        if record.cache:
            CACHE_HITS.labels(kind=record.cache).inc()
        for call in record.calls:
            if call.cost_usd:
                COST.labels(tier=call.tier).inc(call.cost_usd)
        if record.counterfactual_usd:
            COUNTERFACTUAL.inc(record.counterfactual_usd)
    except Exception:  # metrics must never break logging
        log.exception("metrics update failed")


def budget_rejection(action: str) -> None:
    """Count a cloud call refused by a budget; ``action`` is ``local`` or ``reject``."""
    BUDGET_REJECTIONS.labels(action=action).inc()


def escalation_capped() -> None:
    """Count a failing local answer kept by the escalation share cap."""
    ESCALATIONS_CAPPED.inc()


def rate_limited() -> None:
    """Count a request refused by a rate limit."""
    RATE_LIMITED.inc()


def local_worker_crash(model: str, outcome: str) -> None:
    """Count one dead in-process worker of ``model``; ``outcome`` is ``restarted`` (also
    counted as a restart) or ``stopped``. Never raises."""
    try:
        LOCAL_WORKER_CRASHES.labels(model=model, outcome=outcome).inc()
        if outcome == "restarted":
            LOCAL_WORKER_RESTARTS.labels(model=model).inc()
    except Exception:  # metrics must never break the worker pool's supervision
        log.exception("metrics update failed")


def render() -> bytes:
    """The exposition text: every worker's samples in multiprocess mode, else this process's."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
