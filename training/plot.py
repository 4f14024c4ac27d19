"""PNG plot of quality against cloud share for several routers (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

from .metrics import Curve

__all__ = ["plot_quality"]


def plot_quality(curves: dict[str, Curve], path: str | Path, title: str) -> Path:
    """Draw each router's quality curve, with the weak and strong models' quality as lines.

    Args:
        curves: router name -> its :class:`~training.metrics.Curve` on the same prompts.
        path: PNG file to write (folders created).
    Returns:
        the path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    styles = {"random": ":", "length": "--", "oracle": "-."}
    any_curve = next(iter(curves.values()))
    for name, c in curves.items():
        ax.plot(c.share, c.quality, styles.get(name, "-"), label=name, linewidth=2 if name not in styles else 1.3)
    ax.axhline(any_curve.q_weak, color="grey", linewidth=0.8)
    ax.axhline(any_curve.q_strong, color="black", linewidth=0.8)
    ax.text(1.0, any_curve.q_weak, " weak", va="center", fontsize=8)
    ax.text(1.0, any_curve.q_strong, " strong", va="center", fontsize=8)
    ax.set_xlabel("share of prompts sent to the strong (cloud) model")
    ax.set_ylabel("quality (mean outcome)")
    ax.set_xlim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
