"""The policy version in shadow against the active policy, on the same requests (pure).

Every request routed while a version was in shadow carries ``shadow_policy_version`` and
``shadow_tier`` (the tier that version would have chosen first; :mod:`router.pipeline.candidate`).
:func:`compare_shadow_policies` groups them by version and compares, on exactly those
requests:

- agreement: the share whose shadow tier equals the tier the active policy routed to;
- cloud share: routed to the cloud tier, active vs shadow;
- estimated cost (USD): the active policy's is the logged actual cost; the shadow's counts
  each request at its actual cost when both chose the same tier, at its counterfactual
  cloud cost (:mod:`router.ledger.cost`) when only the shadow chose the cloud, and at the
  mean actual cost of the window's requests the active policy routed locally (escalations
  included) when only the shadow chose the local tier. A shadow that would have refused a
  request (``error:<code>``) is counted at the actual cost and in ``refused``.

The estimate assumes a request costs on a tier what the logged requests on that tier cost;
escalations the shadow would have caused or avoided are not re-simulated (``slm-router
replay`` does that with a policy file).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ..store.records import RequestRecord

__all__ = ["ShadowComparison", "compare_shadow_policies"]


@dataclass(frozen=True)
class ShadowComparison:
    """One shadow version against the active policy.

    Attributes:
        version: the shadow policy version; active_versions: the active policy hashes of
            the compared requests.
        requests: compared requests (ok, routed, with a shadow decision); agree: of them,
            same first tier; refused: the shadow would have refused.
        active_cloud_share, shadow_cloud_share: routed to the cloud tier (0..1).
        active_usd: their actual cost; shadow_usd: the shadow's estimated cost (USD; see
            the module docstring); unpriced: requests without a known cost (left out of both).
    """

    version: str
    active_versions: tuple[str, ...]
    requests: int
    agree: int
    refused: int
    active_cloud_share: float
    shadow_cloud_share: float
    active_usd: float
    shadow_usd: float
    unpriced: int

    @property
    def agreement(self) -> float | None:
        """agree / requests; None without requests."""
        return self.agree / self.requests if self.requests else None


def compare_shadow_policies(records: Iterable[RequestRecord], local_tier: str, cloud_tier: str) -> list[ShadowComparison]:
    """One :class:`ShadowComparison` per shadow version in ``records``, sorted by version."""
    records = [r for r in records if r.status == "ok" and r.routed_tier is not None]
    local_costs = [r.cost_usd for r in records if r.routed_tier == local_tier and r.cost_usd is not None]
    local_mean = sum(local_costs) / len(local_costs) if local_costs else 0.0
    by_version: dict[str, list[RequestRecord]] = defaultdict(list)
    for r in records:
        if r.shadow_policy_version and r.shadow_tier:
            by_version[r.shadow_policy_version].append(r)
    out = []
    for version, rs in sorted(by_version.items()):
        active_usd = shadow_usd = 0.0
        unpriced = refused = 0
        for r in rs:
            if r.shadow_tier.startswith("error:"):
                refused += 1
            if r.cost_usd is None:
                unpriced += 1
                continue
            active_usd += r.cost_usd
            if r.shadow_tier == r.routed_tier or r.shadow_tier.startswith("error:"):
                shadow_usd += r.cost_usd
            elif r.shadow_tier == cloud_tier:
                shadow_usd += r.counterfactual_usd if r.counterfactual_usd is not None else r.cost_usd
            elif r.shadow_tier == local_tier:
                shadow_usd += local_mean
            else:
                shadow_usd += r.cost_usd
        n = len(rs)
        out.append(ShadowComparison(
            version=version, active_versions=tuple(sorted({r.policy_hash or "" for r in rs})), requests=n,
            agree=sum(r.shadow_tier == r.routed_tier for r in rs), refused=refused,
            active_cloud_share=sum(r.routed_tier == cloud_tier for r in rs) / n,
            shadow_cloud_share=sum(r.shadow_tier == cloud_tier for r in rs) / n,
            active_usd=active_usd, shadow_usd=shadow_usd, unpriced=unpriced))
    return out
