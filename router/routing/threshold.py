"""Choosing a classifier threshold from a target cloud share.

Pure: :func:`threshold_for_cloud_share` reads the ``score_quantiles`` an artifact card
records (the held-out score at cloud shares 0.1 .. 0.9, written by ``slm-router train``) and
interpolates.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["threshold_for_cloud_share", "threshold_for_artifact"]


def threshold_for_cloud_share(score_quantiles: Mapping[str, object], share: float) -> float:
    """The threshold that sends about ``share`` of requests to the cloud tier.

    Args:
        score_quantiles: the card's map from cloud share (a decimal string such as ``"0.3"``)
            to the held-out score at that share; other keys (``meaning``) are ignored.
        share: target share of requests routed to the cloud tier, in [0, 1].

    Returns:
        A threshold in [0, 1]: linear interpolation between the card's points, with share 0
        pinned to threshold 1.0 and share 1 to threshold 0.0 (the score is a probability).

    Raises:
        ValueError: ``share`` is outside [0, 1] or the card has no numeric points.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"target cloud share must be in [0, 1], got {share}")
    points: dict[float, float] = {0.0: 1.0, 1.0: 0.0}
    found = 0
    for key, value in score_quantiles.items():
        try:
            s, t = float(key), float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if 0.0 < s < 1.0:
            points[s] = min(max(t, 0.0), 1.0)
            found += 1
    if not found:
        raise ValueError("the artifact card has no score_quantiles to derive a threshold from")
    xs = sorted(points)
    for lo, hi in zip(xs, xs[1:]):
        if lo <= share <= hi:
            w = (share - lo) / (hi - lo)
            return points[lo] + w * (points[hi] - points[lo])
    return points[xs[-1]]  # unreachable: share is in [0, 1]


def threshold_for_artifact(location: str, share: float) -> float:
    """The threshold for ``share`` from the card of the classifier artifact at ``location``
    (``builtin``, ``builtin:<name>`` or a directory; reads the card: blocking).

    Raises:
        FileNotFoundError: the artifact is incomplete.
        ValueError: see :func:`threshold_for_cloud_share`.
    """
    from ..scoring.artifact import load_artifact
    from ..scoring.card import ArtifactCard

    return threshold_for_cloud_share(ArtifactCard.read(load_artifact(location).card).score_quantiles, share)
