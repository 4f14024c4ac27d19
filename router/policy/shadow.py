"""Policy section ``shadow``: sampled cloud answers that measure the local tier's quality."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import _Strict

__all__ = ["ShadowConfig"]


class ShadowConfig(_Strict):
    """Shadow sampling: measure the quality of local answers against the cloud tier.

    ``rate`` of the locally served requests are also sent to the cloud tier in the
    background (after the client has its answer) and both answers are stored with their
    agreement (MiniLM cosine similarity; an optional LLM judge). Escalated requests already
    have both answers, so they are scored too (no extra call) while ``rate > 0``.
    ``agree_at`` default 0.89, measured by ``bench/shadow_agreement.py`` on judged pairs of a
    weaker and a stronger model's answers: the similarity at which the share of agreeing
    pairs equals the share judged as good is 0.889 on AlpacaEval (gemma-7b-it vs GPT-4-Turbo,
    6.3% judged as good) and 0.886 on GSM8K (Mixtral vs GPT-4, 64.6% correct). It estimates
    that *rate*; it does not judge single answers (AUROC 0.43 and 0.64): use ``judge_tier``
    for that. The judge (:mod:`router.ledger.judge`) is asked in both orders of the two
    answers (``judge_swap``) and gives a verdict only when both orders agree: the three-way
    verdict (local better / as good / worse), which ``slm-router learn`` reads as label and
    weight, and the binary "at least as good" it implies.

    ``strategy`` chooses which locally served requests are sampled: ``uniform`` takes each with
    probability ``rate``; ``uncertain`` takes those whose score was close to their threshold
    more often (:func:`router.ledger.shadow.sample_probability`: ``rate`` at the threshold,
    falling as ``exp(-|score - threshold| / band)``, never below ``min_rate``), which teaches
    ``slm-router learn`` most per judged sample near the threshold. ``floor`` mixes in a
    uniform share: every request keeps ``floor * rate`` whatever its distance, so labels cover
    the whole score range (APGR ranks every request, not only those near the threshold) and
    the weights stay below ``1 / (rate * floor)``; 0 (the default) is pure uncertainty
    sampling, as before. The probability is stored with each sample and quality estimates
    weight samples by its inverse.

    ``cloud_rate`` judges the other side of the decision: that share of the requests the
    classifier sent to the cloud tier (chosen by the same ``strategy``, probability stored) are
    also answered by the local tier in the background and the judge compares that local answer
    with the cloud answer the client got (samples of kind ``local_shadow``). Without them the
    labels of ``slm-router learn`` cover only the requests served locally, and a candidate's
    ranking of the cloud-routed ones is checked by nothing; ``learn`` then refuses to promote.
    Each costs one local call (CPU on the serving machine) and the judge's tokens.
    """

    rate: float = Field(0.0, ge=0, le=1, description="share of locally served requests shadowed (0-1)")
    agree_at: float = Field(0.89, ge=-1, le=1, description="similarity at or above which answers agree")
    cloud_rate: float = Field(
        0.0, ge=0, le=1, description="share of cloud-routed requests also answered by the local tier in the background "
                                     "and judged against the cloud answer (needs judge_tier); labels for learn")
    judge_tier: str | None = Field(
        None, description="tier asked whether the local answer is better than, as good as or worse than the cloud's "
                          "(BETTER / SAME / WORSE); None = no judge"
    )
    judge_swap: bool = Field(
        True, description="ask the judge twice, the answers in both orders; a verdict only when both agree "
                          "(else tie/unsure); false = one order (half the judge's tokens)")
    max_in_flight: int = Field(4, ge=1, description="samples running at once; more are skipped, not queued")
    strategy: Literal["uniform", "uncertain"] = Field(
        "uniform", description="uniform: every local answer sampled at 'rate'; uncertain: more often near the threshold"
    )
    band: float = Field(0.05, gt=0, le=1, description="uncertain: score distance at which the rate falls to 1/e of 'rate'")
    min_rate: float = Field(
        0.01, ge=0, le=1, description="uncertain: the lowest sampling probability (bounds the inverse-probability weights)"
    )
    floor: float = Field(
        0.0, ge=0, le=1, description="uncertain: the share of 'rate' every request keeps whatever its distance to the "
                                     "threshold (a uniform part: labels over the whole score range, weights at most "
                                     "1 / (rate * floor)); 0 = pure uncertainty sampling")
