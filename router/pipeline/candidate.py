"""A policy version in shadow: it decides every request beside the active policy, never acting.

:class:`CandidatePolicy` runs the routing stage of the candidate policy (its rules, overlays,
threshold and classifier; :class:`~router.routing.route.RouteStage`) on each routed request
and gives the tier it would have chosen; the request is still answered by the active policy,
and the log row keeps ``shadow_policy_version`` and ``shadow_tier`` so that ``slm-router
report`` compares the two on the same requests (:mod:`router.analysis.policy_compare`).
It calls no model and writes no shared state: the candidate routes without session
stickiness and without the budget's threshold shift (both would read or write state the
active policy owns). A candidate with the same classifier settings as the active router
shares its scorer and scoring thread; another gets its own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..batching import MicroBatcher
from ..errors import RouterError
from ..policy import Policy
from ..request.identity import CallerIndex, Identity
from ..request.parse import ChatRequest
from ..routing.route import RouteStage
from ..scoring import make_scorer, scorer_settings
from ..scoring.protocols import EmbeddingScorer
from ..scoring.two_stage import StagedScore, score_near

if TYPE_CHECKING:
    from .router import Router

__all__ = ["CandidatePolicy"]

log = logging.getLogger(__name__)


class CandidatePolicy:
    """The shadow decisions of one policy version.

    Args:
        policy: the candidate policy; version: its id (:func:`router.policy.view.policy_hash`).
        active: the active router; its scorer is shared when the classifier settings match.
    """

    def __init__(self, policy: Policy, version: str, active: "Router") -> None:
        self.policy = policy
        self.version = version
        self.callers = CallerIndex(policy)
        if scorer_settings(policy.routing.classifier) == scorer_settings(active.policy.routing.classifier):
            self.scorer = active.scorer
            score = active._score
        else:
            self.scorer = make_scorer(policy.routing.classifier)
            batcher: MicroBatcher[tuple[str, float], StagedScore] = MicroBatcher(
                lambda items: score_near(self.scorer, items), max_batch=32, name="slm-router-shadow-score")

            async def score(text: str, threshold: float) -> StagedScore:
                return await batcher.run((text, threshold))

        self.stage = RouteStage(policy, score, self._card)

    def _card(self):
        if isinstance(self.scorer, EmbeddingScorer):
            return self.scorer.artifact.card
        from ..scoring.artifact import load_artifact

        return load_artifact(self.policy.routing.classifier.artifact).card

    def warm_up(self) -> None:
        """Load the candidate's classifier (blocking) when it has its own."""
        if isinstance(self.scorer, EmbeddingScorer):
            self.scorer.warm_up()
        self.stage.base_threshold()

    async def decide(self, request: ChatRequest, headers: Mapping[str, str] | None) -> tuple[str, str]:
        """(this version, the tier it would choose first), or ``error:<code>`` for the tier
        when the candidate would refuse the request. Never raises."""
        try:
            identity = Identity.parse(headers, self.callers)
            routing = await self.stage.route(request, identity.caller, headers)
            return self.version, routing.decision.tier
        except RouterError as err:
            return self.version, f"error:{err.code}"
        except Exception:
            log.exception("shadow policy %s could not decide a request", self.version)
            return self.version, "error:internal_error"
