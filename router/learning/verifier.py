"""The verifier ``slm-router learn`` trains when the log keeps text (pure but for ``embed``).

With ``log.keep_for_learning: text`` a request row keeps the answer the client got and, for
an escalated request, the local tier's attempt (:func:`router.learning.keep.add_answers`).
For every label whose local answer was kept, the verifier reads that answer's text (its
embedding and text features, the same inputs as a classifier artifact:
:func:`router.scoring.routing_model.build_inputs`) and predicts P(the local answer is
wrong) = P(needs_cloud); the cascade reads ``1 - P`` as its ``verifier`` signal
(:mod:`router.cascade.measures.verifier`), so a promoted verifier becomes one of the
cascade's checks (``escalation.min.verifier``).

The model is a standardised L2 logistic regression (scikit-learn) with the labels'
inverse-probability weights, its C chosen by the same inner cross-validation as the
candidate router's (weighted log loss). It is judged on the same time split as the router
(fit on the earlier labels, AUROC on the later ones, percentile bootstrap 95% interval) and
promoted only when the interval's low end is above 0.5 (better than a coin on later
traffic). The cut written to the candidate policy is 0.5 on P(correct): escalate when the
verifier finds the answer more likely wrong than right (the Bayes decision at equal costs of
the two errors).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..store.records import RequestRecord
from .labels import Label

__all__ = ["VerifierResult", "answer_texts", "fit_verifier", "MIN_ANSWERS", "VERIFIER_CUT", "VERIFIER_C"]

MIN_ANSWERS = 40
VERIFIER_CUT = 0.5
VERIFIER_C = (0.01, 0.1, 1.0)


@dataclass
class VerifierResult:
    """What the verifier run found. ``promote`` only when its held-out AUROC beats a coin
    beyond its interval; ``reason`` says why (not). ``auroc``: (point, low, high) on the later
    labels; ``model``: a scikit-learn pipeline over :func:`build_inputs` rows, refitted on every
    answer (None unless promoted); ``C``: the chosen L2 strength."""

    n_answers: int
    promote: bool
    reason: str
    n_train: int = 0
    n_test: int = 0
    C: float | None = None
    auroc: tuple[float, float, float] | None = None
    cut: float = VERIFIER_CUT
    model: Any = None
    losses: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready (``learning.json``'s ``verifier``)."""
        return {"answers": self.n_answers, "promote": self.promote, "reason": self.reason, "n_train": self.n_train,
                "n_test": self.n_test, "C": self.C, "auroc": self.auroc, "cut": self.cut, "losses": self.losses}


def answer_texts(records: Iterable[RequestRecord], labels: Sequence[Label],
                 local_shadow_texts: dict[str, str] | None = None) -> list[str | None]:
    """The kept local answer of each label's request: ``local_answer`` of an escalated
    request, ``answer`` of one the local tier served, and for a cloud-routed one (a
    ``local_shadow`` label) the local tier's shadow answer from ``local_shadow_texts``
    (request id -> text), only when its row kept text; None when its row kept no text."""
    by_id = {r.id: r for r in records}
    out: list[str | None] = []
    for lb in labels:
        r = by_id.get(lb.request_id)
        kept = (r.learning or {}) if r is not None else {}
        if lb.source == "local_shadow":  # the client got the cloud's answer; the local one is the sample's
            text = (local_shadow_texts or {}).get(lb.request_id) if "answer" in kept else None
        else:
            text = kept.get("local_answer") if r is not None and r.escalated else kept.get("answer")
        out.append(text if isinstance(text, str) and text.strip() else None)
    return out


def _pipeline(C: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))


def _fit(X: np.ndarray, y: np.ndarray, w: np.ndarray, C: float):
    return _pipeline(C).fit(X, y.astype(int), logisticregression__sample_weight=w)


def _choose_C(X: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int) -> tuple[float, dict[str, float]]:
    from sklearn.model_selection import StratifiedKFold

    folds = int(min(5, y.sum(), len(y) - y.sum()))
    if folds < 2:
        return VERIFIER_C[0], {}
    losses = {}
    for C in VERIFIER_C:
        held = np.zeros(len(y))
        for tr, te in StratifiedKFold(folds, shuffle=True, random_state=seed).split(X, y.astype(int)):
            held[te] = _fit(X[tr], y[tr], w[tr], C).predict_proba(X[te])[:, 1]
        p = np.clip(held, 1e-6, 1 - 1e-6)
        losses[f"C={C:g}"] = float((w * -(y * np.log(p) + (1 - y) * np.log(1 - p))).sum() / w.sum())
    best = min(VERIFIER_C, key=lambda C: losses[f"C={C:g}"])
    return best, losses


def _auroc(y: np.ndarray, p: np.ndarray, w: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    from sklearn.metrics import roc_auc_score

    point = float(roc_auc_score(y, p, sample_weight=w))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        if len(set(y[i])) == 2:
            boots.append(roc_auc_score(y[i], p[i], sample_weight=w[i]))
    if not boots:
        return point, float("nan"), float("nan")
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return point, float(lo), float(hi)


def fit_verifier(texts: Sequence[str | None], y: np.ndarray, w: np.ndarray, ts: np.ndarray,
                 embed: Callable[[list[str]], np.ndarray], train_share: float = 0.7, n_boot: int = 200,
                 seed: int = 0) -> VerifierResult:
    """Train and judge the verifier (see the module docstring) on the labels that kept an answer.

    Args:
        texts: each label's kept local answer (None: not kept), aligned with ``y``, ``w``, ``ts``.
        y: needs_cloud (1: the local answer was not good enough); w: weights; ts: arrival (Unix s).
        embed: answers -> input rows (n, dim + f), the prior artifact's embedder and text features.
        train_share: earlier share of the answers trained on (by time); the rest tests.

    Returns:
        the :class:`VerifierResult` (its model refitted on every answer when promoted).
    """
    from .evaluate import time_split

    keep = [i for i, t in enumerate(texts) if t is not None]
    if len(keep) < MIN_ANSWERS:
        return VerifierResult(len(keep), False, f"{len(keep)} labelled requests kept their local answer (need "
                              f"{MIN_ANSWERS}; set log.keep_for_learning: text)")
    y, w, ts = (np.asarray(a, dtype=float)[keep] for a in (y, w, ts))
    X = np.asarray(embed([texts[i] for i in keep]), dtype=np.float32)
    tr, te = time_split(ts, train_share)
    res = VerifierResult(len(keep), False, "", len(tr), len(te))
    if len(set(y[tr].astype(int))) < 2 or len(set(y[te].astype(int))) < 2:
        res.reason = "the kept answers' labels have one outcome only in the earlier or the later part"
        return res
    res.C, res.losses = _choose_C(X[tr], y[tr], w[tr], seed)
    held = _fit(X[tr], y[tr], w[tr], res.C).predict_proba(X[te])[:, 1]
    res.auroc = auc = _auroc(y[te], held, w[te], n_boot, seed)
    if not (np.isfinite(auc[1]) and auc[1] > 0.5):
        res.reason = (f"verifier not promoted: AUROC {auc[0]:.3f} [{auc[1]:.3f}, {auc[2]:.3f}] on {len(te)} later "
                      "answers does not exclude a coin (0.5)")
        return res
    res.model = _fit(X, y, w, res.C)
    res.promote = True
    res.reason = (f"verifier promoted: AUROC {auc[0]:.3f} [{auc[1]:.3f}, {auc[2]:.3f}] on {len(te)} later answers "
                  f"(C={res.C:g}); the cascade escalates a local answer whose P(correct) < {res.cut:g}")
    return res
