"""``slm-router calibrate``: a routing threshold for a target cloud share, or the joint
threshold + escalation combiner from label files, optionally written into a policy file.

Registered on the main typer app by :mod:`router.cli.main`; the work is done by the
``training`` package (imported on use). Bad arguments end with a one-line message and exit
code 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from .args import require_out
from .train import _fail, _training, console

__all__ = ["calibrate"]


def calibrate(
    artifact: str = typer.Option("builtin", "--artifact", help="Artifact directory or 'builtin'."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset names, comma-separated, or a .jsonl file (the traffic to calibrate on)."),
    target_cloud_share: Optional[float] = typer.Option(None, "--target-cloud-share", help="Share of requests to send to the cloud, 0..1."),
    target_quality: Optional[float] = typer.Option(None, "--target-quality", help="Quality to keep, as a fraction of the strong model's (e.g. 0.95)."),
    write_policy: Optional[Path] = typer.Option(None, "--write-policy", help="Policy YAML to write the threshold (and artifact) into; created if missing."),
    labels: Optional[list[Path]] = typer.Option(None, "--labels", help="Label files of the local tier (slm-router label): "
                                                "calibrate the router threshold and the escalation combiner together."),
    no_self_check: bool = typer.Option(False, "--no-self-check", help="With --labels: leave the self-check out of the combiner (no extra call)."),
    no_consistency: bool = typer.Option(False, "--no-consistency", help="With --labels: leave the consistency sample out of the combiner."),
    verifier: Optional[str] = typer.Option(None, "--verifier", help="With --labels: a verifier artifact (train --text answer) "
                                            "whose P(correct) of the answer joins the combiner."),
) -> None:
    """Print the threshold that gives a target cloud share or quality on the data; optionally write it into a policy.

    Prompts the artifact was trained on are scored with their held-out (out-of-fold) scores
    saved at training time; other prompts with the artifact itself. With ``--labels`` and
    ``--target-quality Q``: choose the router threshold and the escalation cut together,
    minimising cost subject to quality >= Q x cloud-only quality, and write both (with the
    fitted combiner) into the policy.
    """
    _training()
    if write_policy is not None:  # before any work: a long calibration must not fail at its last step
        if write_policy.exists():
            _read_policy_yaml(write_policy)
        else:
            require_out(write_policy, "--write-policy", is_file=True)
    if labels:
        if target_cloud_share is not None or data:
            _fail("--labels calibrates for --target-quality only (no --data, no --target-cloud-share)")
        if target_quality is None:
            _fail("--target-quality is required with --labels (e.g. --target-quality 0.95)")
        _calibrate_joint(artifact, labels, target_quality, write_policy, no_self_check, no_consistency, verifier)
        return
    if not data:
        _fail("give --data (the traffic to calibrate on) or --labels (label files of the local tier)")
    import numpy as np

    from ..scoring.artifact import load_artifact
    from ..scoring.classifier import EmbeddingClassifier
    from training.calibrate import threshold_for_quality, threshold_for_share
    from training.datasets import load
    from training.metrics import quality_curve
    from training.train import load_oof, prompt_key

    if (target_cloud_share is None) == (target_quality is None):
        _fail("give exactly one of --target-cloud-share or --target-quality")
    if target_cloud_share is not None and not 0.0 <= target_cloud_share <= 1.0:
        _fail(f"--target-cloud-share must be in [0, 1], got {target_cloud_share}")
    if target_quality is not None and not 0.0 < target_quality <= 1.5:
        _fail(f"--target-quality must be a fraction of the strong model's quality in (0, 1.5], got {target_quality}")
    try:
        art = load_artifact(artifact)
        rows = load(data)
    except (ValueError, FileNotFoundError, KeyError) as err:
        _fail(str(err).strip("'\""))
    oof = load_oof(art.path)
    scores = np.array([oof.get(prompt_key(e.prompt), np.nan) for e in rows])
    fresh = np.nonzero(np.isnan(scores))[0]
    if len(fresh):
        clf = EmbeddingClassifier(art.path)
        texts = [rows[i].prompt for i in fresh]
        scores[fresh] = [s for j in range(0, len(texts), 256) for s in clf.score(texts[j:j + 256])]
    weak, strong = np.array([e.weak for e in rows]), np.array([e.strong for e in rows])
    if target_cloud_share is not None:
        threshold, share = threshold_for_share(scores, target_cloud_share), target_cloud_share
    else:
        try:
            threshold, share = threshold_for_quality(scores, weak, strong, target_quality)
        except ValueError as err:
            _fail(str(err))
    realised = float(np.mean(scores >= threshold))
    table = Table(title=f"calibration on {escape(str(data))} ({len(rows)} prompts; {len(rows) - len(fresh)} held-out "
                        f"training scores, {len(fresh)} scored now)", show_header=False)
    table.add_row("threshold", f"{threshold:.4f}")
    table.add_row("cloud share at threshold", f"{realised:.3f}" + (f" (target {target_cloud_share:.3f})" if target_cloud_share is not None else ""))
    if weak.mean() != strong.mean():
        curve = quality_curve(scores, weak, strong)
        k = int(round(realised * len(rows)))
        table.add_row("quality at threshold", f"{curve.quality[k]:.4f} = {curve.quality[k] / curve.q_strong:.1%} of strong "
                      f"({curve.q_strong:.4f}); weak alone {curve.q_weak:.4f}")
        table.add_row("PGR at threshold", f"{curve.pgr[k]:.3f}")
    console.print(table)
    if write_policy:
        _write_threshold(write_policy, threshold, _artifact_ref(artifact))
        console.print(f"wrote routing.classifier.threshold = {threshold:.4f} into {write_policy}", markup=False)


def _artifact_ref(artifact: str) -> Optional[str]:
    """What a policy should name: nothing for the default, ``builtin:<name>`` as given, else
    the directory's absolute path."""
    if str(artifact) == "builtin":
        return None
    return str(artifact) if str(artifact).startswith("builtin:") else str(Path(artifact).resolve())


def _artifact_scores(artifact: str, prompts: list[str]):
    """Scores of ``prompts`` by ``artifact``: held-out ones saved at training time where the
    artifact was trained on the prompt, else scored now. Returns (scores, n scored now)."""
    import numpy as np

    from ..scoring.artifact import load_artifact
    from ..scoring.classifier import EmbeddingClassifier
    from training.train import load_oof, prompt_key

    art = load_artifact(artifact)
    oof = load_oof(art.path)
    scores = np.array([oof.get(prompt_key(p), np.nan) for p in prompts])
    fresh = np.nonzero(np.isnan(scores))[0]
    if len(fresh):
        clf = EmbeddingClassifier(art.path)
        texts = [prompts[i] for i in fresh]
        scores[fresh] = [s for j in range(0, len(texts), 256) for s in clf.score(texts[j:j + 256])]
    return scores, len(fresh)


def _calibrate_joint(artifact: str, label_files: list[Path], target: float, write_policy: Optional[Path],
                     no_self_check: bool, no_consistency: bool, verifier: Optional[str] = None) -> None:
    import numpy as np

    from ..ledger.cost import call_cost
    from training.cascade import COMBINER_SIGNALS, Costs, joint_calibration
    from training.datasets.local_labels import prompt_text
    from training.label import read_labels

    from ..errors import PolicyError
    from ..policy import load_policy

    if not 0.0 < target <= 1.0:
        _fail(f"--target-quality must be in (0, 1] with --labels, got {target}")
    try:
        rows = read_labels(label_files)
        policy = load_policy(write_policy if write_policy and write_policy.exists() else None)
    except (FileNotFoundError, PolicyError) as err:
        _fail(str(err))
    if len(rows) < 50:
        _fail(f"{len(rows)} labelled rows in {', '.join(map(str, label_files))}; calibrate needs at least 50")
    names = [n for n in COMBINER_SIGNALS if not (no_self_check and n == "self_check")
             and not (no_consistency and n == "consistency")] + ["router_score"]
    verified = None
    try:
        scores, fresh = _artifact_scores(artifact, [prompt_text(r["messages"]) for r in rows])
        if verifier:
            wrong, _ = _artifact_scores(verifier, [r.get("answer") or " " for r in rows])
            verified, names = 1.0 - wrong, names + ["verifier"]
    except (ValueError, FileNotFoundError, KeyError) as err:
        _fail(str(err).strip("'\""))
    local, cloud = policy.local, policy.cloud

    def price(tier, p: int, c: int, ms: float) -> float:
        return call_cost(tier, p, c, 0, ms) or 0.0

    def checks(r: dict) -> float:
        return sum(price(local, (r.get(k) or {}).get("prompt_tokens", 0), (r.get(k) or {}).get("completion_tokens", 0),
                         (r.get(k) or {}).get("latency_ms", 0.0))
                   for k in ("self_check",) * ("self_check" in names) + ("sample",) * ("consistency" in names))

    costs = Costs(np.array([price(local, r["prompt_tokens"], r["completion_tokens"], r["latency_ms"]) for r in rows]),
                  np.array([checks(r) for r in rows]),
                  np.array([price(cloud, r["prompt_tokens"], max(r["completion_tokens"], 1), 0.0) for r in rows]))
    provenance = f"{len(rows)} labels from {', '.join(p.name for p in label_files)}"
    try:
        result = joint_calibration(rows, scores, costs, target, names, trained_on=provenance, verifier=verified)
    except ValueError as err:
        _fail(str(err))
    p = result.point
    t_router = float(min(max(p.t_router, 0.0), 1.0))
    table = Table(title=f"joint calibration on {result.n} labelled local answers (held-out P(correct); cloud outcome "
                        f"recorded for {result.recorded_share:.0%}, treated as correct for the rest)", show_header=False)
    table.add_row("router threshold (score >= -> cloud)", f"{t_router:.4f}")
    table.add_row("escalate when P(correct) <", f"{p.t_escalate:.4f}")
    table.add_row("quality", f"{p.quality:.4f} = {p.quality_vs_cloud:.1%} of cloud-only (target {target:.0%}); "
                             f"local-only {result.all_local_quality:.4f}")
    table.add_row("cloud calls (routed + escalated)", f"{p.cloud_share:.1%} (escalated {p.escalated_share:.1%})")
    table.add_row("cost", f"${p.cost_usd:.6f} vs ${result.all_cloud_usd:.6f} all-cloud "
                          f"({p.cost_usd / result.all_cloud_usd:.1%})" if result.all_cloud_usd else f"${p.cost_usd:.6f}")
    table.add_row("combiner inputs", ", ".join(names))
    console.print(table)
    if write_policy:
        _write_joint(write_policy, t_router, _artifact_ref(artifact),
                     result.combiner.model_dump(exclude_none=True), "self_check" in names, "consistency" in names,
                     _artifact_ref(verifier) if verifier else None)
        console.print(f"wrote routing.classifier.threshold and escalation.combiner into {write_policy}", markup=False)


def _write_joint(path: Path, threshold: float, artifact: Optional[str], combiner: dict, self_check: bool,
                 consistency: bool, verifier: Optional[str] = None) -> None:
    """Write the router threshold and the escalation combiner into a policy YAML (created
    if missing; other keys kept). The combiner decides alone, so the single mean-logprob
    threshold is turned off (-100)."""
    data = _read_policy_yaml(path)
    escalation = data.setdefault("escalation", {})
    escalation.update(enabled=True, min_mean_logprob=-100.0, combiner=combiner, self_check=bool(self_check),
                      consistency_samples=1 if consistency else 0)
    if verifier:
        escalation["verifier_artifact"] = verifier
    _write_threshold(path, threshold, artifact, data)


def _read_policy_yaml(path: Path) -> dict:
    import yaml

    data = {}
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            _fail(f"{path}: cannot read policy ({err})")
        if not isinstance(data, dict):
            _fail(f"{path}: the policy must be a YAML mapping")
    return data


def _write_threshold(path: Path, threshold: float, artifact: Optional[str], data: Optional[dict] = None) -> None:
    import yaml

    from ..errors import PolicyError
    from ..policy import policy_from_dict

    data = _read_policy_yaml(path) if data is None else data
    classifier = data.setdefault("routing", {}).setdefault("classifier", {})
    classifier["threshold"] = round(float(threshold), 6)
    if artifact:
        classifier["artifact"] = artifact
    try:
        policy_from_dict(json.loads(json.dumps(data)), source=str(path))
    except PolicyError as err:
        _fail(str(err))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=None), encoding="utf-8")
    except OSError as err:
        _fail(f"--write-policy {path}: cannot write it ({err.strerror or err})")
