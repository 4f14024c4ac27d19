"""Thresholds for a target cloud share or a target quality, and how well they hold out.

The router sends a prompt to the cloud tier when its score >= threshold, so the threshold
for cloud share ``c`` on a set of scores is the ``round(c * n)``-th largest score. For a
target quality ``Q`` (a fraction of the strong model's quality) the share is the smallest
``c`` with q(c) >= Q * q_strong on the quality curve of :mod:`training.metrics`, and the
threshold is the score at that rank.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .metrics import quality_curve

__all__ = ["threshold_for_share", "threshold_for_quality"]


def threshold_for_share(scores: Sequence[float], share: float) -> float:
    """Threshold that sends ``share`` (in [0, 1]) of ``scores`` to the cloud tier (score >= threshold).

    Share 0 gives a threshold just above the highest score (capped at 1.0).

    Raises:
        ValueError: share outside [0, 1] or no scores.
    """
    s = np.sort(np.asarray(scores, dtype=float))[::-1]
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"cloud share must be in [0, 1], got {share}")
    if len(s) == 0:
        raise ValueError("no scores to calibrate on")
    k = int(round(share * len(s)))
    if k == 0:
        return float(min(1.0, np.nextafter(s[0], np.inf)))
    return float(s[k - 1])


def threshold_for_quality(scores, weak, strong, fraction: float) -> tuple[float, float]:
    """Threshold and cloud share reaching ``fraction`` x the strong model's quality on these prompts.

    Returns:
        (threshold, cloud share); share 1.0 (threshold = lowest score) when never reached before.
    Raises:
        ValueError: fraction outside (0, 1.5], or PGR undefined on this data.
    """
    if not 0.0 < fraction <= 1.5:
        raise ValueError(f"target quality must be a fraction of the strong model's quality in (0, 1.5], got {fraction}")
    curve = quality_curve(scores, weak, strong)
    hit = np.nonzero(curve.quality >= fraction * curve.q_strong - 1e-12)[0]
    share = float(curve.share[hit[0]]) if len(hit) else 1.0
    return threshold_for_share(scores, share), share
