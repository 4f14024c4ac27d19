"""Policy checks against what is deployed: files (GGUF, classifier artifacts), prices in
litellm's map, and what the tiers can return for the checks the policy configures.

Each function adds its problems to a :class:`ProblemSink` (the policy check's collector,
which places them at the YAML key they are about).
"""

from __future__ import annotations

import json
import os
from typing import Any, Protocol

from .model import Policy

__all__ = ["ProblemSink", "price_problems", "deployment_problems"]


class ProblemSink(Protocol):
    """Where checks put what they find (``loc``: the policy path, e.g. ``("tiers", "cloud", "model")``)."""

    def add(self, loc: tuple[Any, ...], message: str, hint: str | None = None, severity: str = "error",
            *, at_key: bool = False) -> None: ...


def price_problems(policy: Policy, out: ProblemSink) -> None:
    unpriced = [(name, t) for name, t in policy.tiers.items() if t.price is None and not t.is_in_process]
    if not unpriced:
        return
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    for name, tier in unpriced:
        try:
            litellm.cost_per_token(model=tier.model, prompt_tokens=1, completion_tokens=1)
        except Exception:
            out.add(("tiers", name, "model"),
                    f"litellm has no price for model {tier.model!r}; its calls would be logged unpriced "
                    "and flagged by the report",
                    "add price: {input_usd_per_mtok: ..., output_usd_per_mtok: ...} to the tier",
                    severity="warning")


_NO_LOGPROB_PROVIDERS = frozenset({"ollama", "ollama_chat"})
"""litellm providers whose chat answers carry no token log-probabilities."""


def _artifact_broken(location: str) -> str | None:
    """Why the artifact at ``location`` cannot be loaded (the file named), or None."""
    from ..scoring.artifact import ArtifactError, load_artifact

    try:
        load_artifact(location)
    except ArtifactError as err:
        return str(err)
    return None


def deployment_problems(policy: Policy, out: ProblemSink, load_artifact: bool = True) -> None:
    """GGUF files, the classifier artifact (loaded unless ``load_artifact`` is False: ``serve``
    loads it once it answers), the escalation's signals and settings that do nothing."""
    from ..models import resolve_gguf
    from ..scoring.artifact import CARD_FILE, MODEL_FILE, artifact_dir

    for name, tier in policy.tiers.items():
        if tier.is_in_process:
            try:
                resolve_gguf(tier.model.split("/", 1)[1])
            except FileNotFoundError as err:
                out.add(("tiers", name, "model"), str(err), "give 'slm-local/smollm2' or the path of a GGUF file")

    cfg = policy.routing.classifier
    folder = artifact_dir(cfg.artifact)
    loc = ("routing", "classifier", "artifact")
    missing = [f for f in (MODEL_FILE, CARD_FILE) if not (folder / f).is_file()]
    if missing:
        out.add(loc, f"classifier artifact {str(folder)!r} lacks {', '.join(missing)}",
                "use 'builtin' or a directory written by 'slm-router train'")
    elif load_artifact and (broken := _artifact_broken(cfg.artifact)) is not None:
        out.add(loc, broken, "retrain it with 'slm-router train' or restore the file")
    elif cfg.target_cloud_share is not None:
        from ..scoring.card import ArtifactCard

        card = ArtifactCard.read(json.loads((folder / CARD_FILE).read_text()))
        if not card.has_quantiles:
            out.add(("routing", "classifier", "target_cloud_share"),
                    f"the artifact card at {folder} has no score_quantiles to derive a threshold from",
                    "set routing.classifier.threshold instead")

    # A check that reads a signal the local tier cannot return.
    local = policy.tiers.get(policy.routing.local_tier)
    if (local is not None and policy.escalation.enabled and policy.escalation.reads_logprobs()
            and local.model.split("/", 1)[0] in _NO_LOGPROB_PROVIDERS):
        then = "escalated" if policy.escalation.escalates_without_logprobs() else "kept"
        out.add(("escalation",), f"tier {policy.routing.local_tier!r} ({local.model}) returns no token "
                f"log-probabilities through litellm, so every checked answer lacks the signals the thresholds "
                f"read and is {then} (on_missing_signal)",
                "use a server that returns logprobs (llama.cpp server, vLLM: openai/<model> + api_base), or "
                "check with the verifier / self_check instead", severity="warning")

    # Settings that do nothing in this configuration; say so rather than let them look active.
    for oname, overlay in policy.overlays.items():
        if overlay.budgets is not None and not policy.budgets.enabled:
            out.add(("overlays", oname, "budgets"), "per-key budgets apply only with budgets.enabled: true",
                    severity="warning")
