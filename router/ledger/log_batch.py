"""Price and store one batch of finished requests (blocking): the log writer's work,
wherever it runs (the server's log-writer thread, or the log-writer process of
:mod:`router.ledger.log_process`). Pure of asyncio; the store and the price map are its I/O."""

from __future__ import annotations

import logging
from typing import Any

from ..policy import Policy
from ..store.base import BatchStore, RequestStore
from ..store.records import RequestRecord
from .cost import price_request

__all__ = ["Entry", "Priced", "price_and_store", "priced_fields", "apply_priced"]

log = logging.getLogger(__name__)

Entry = tuple[RequestRecord, list[dict[str, Any]] | None, str | None]
"""(record, the request's turns as OpenAI dicts or None when it was never parsed, the answer text or None)."""

Priced = tuple[float | None, float | None, int | None, int | None, list[tuple[float | None, str | None]]]
"""What pricing set on a record: (cost_usd, counterfactual_usd, cloud_prompt_tokens,
cloud_completion_tokens, [(cost_usd, price_source) per call]); USD and tokens."""


def price_and_store(entries: list[Entry], policy: Policy, store: RequestStore) -> list[Exception | None]:
    """Price each record in place (:func:`router.ledger.cost.price_request`; a record whose
    pricing fails is logged unpriced) and write them: one transaction when the store has
    ``record_many`` and there are several, else (or when that fails) one at a time.

    Returns:
        Per entry, the exception that kept it out of the log, or None (written).
    """
    records = []
    for record, messages, answer_text in entries:
        try:
            price_request(record, policy, messages, answer_text)
        except Exception:
            log.exception("pricing request %s failed; logging it unpriced", record.id)
            record.cost_usd = record.counterfactual_usd = None
        records.append(record)
    errors: list[Exception | None] = [None] * len(records)
    if isinstance(store, BatchStore) and len(records) > 1:
        try:
            store.record_many(records)
            return errors
        except Exception:
            log.exception("writing %d log records at once failed; writing them one by one", len(records))
    for i, record in enumerate(records):
        try:
            store.record(record)
        except Exception as err:
            errors[i] = err
    return errors


def priced_fields(record: RequestRecord) -> Priced:
    """The fields :func:`price_and_store` set on ``record`` (see :data:`Priced`)."""
    return (record.cost_usd, record.counterfactual_usd, record.cloud_prompt_tokens, record.cloud_completion_tokens,
            [(c.cost_usd, c.price_source) for c in record.calls])


def apply_priced(record: RequestRecord, fields: Priced) -> None:
    """Set on ``record`` what pricing set on its copy elsewhere (the log-writer process).

    Raises:
        ValueError: ``fields`` has a different number of calls than ``record``.
    """
    cost, counterfactual, cloud_prompt, cloud_completion, calls = fields
    if len(calls) != len(record.calls):
        raise ValueError(f"priced {len(calls)} calls for a record with {len(record.calls)}")
    record.cost_usd, record.counterfactual_usd = cost, counterfactual
    record.cloud_prompt_tokens, record.cloud_completion_tokens = cloud_prompt, cloud_completion
    for call, (call_cost, source) in zip(record.calls, calls):
        call.cost_usd, call.price_source = call_cost, source
