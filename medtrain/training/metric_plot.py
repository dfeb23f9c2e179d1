"""Training curves as a PNG: chosen metrics of the Trainer's log history against the step, one panel
each (training values as a line, evaluation values as dots), e.g. for DPO

    loss | rewards/chosen + rewards/rejected | rewards/margins | rewards/accuracies

Drawn with matplotlib's object API (pyplot alone costs ~300 MB); without matplotlib no PNG is written.
"""

from __future__ import annotations

import os
from typing import Optional


def plot_metrics(log_history: list[dict], panels: list[tuple], path: str, title: str = "") -> Optional[str]:
    """Write `path` (PNG) with one panel per entry of `panels` (a tuple of metric names drawn together);
    returns the path, or None when nothing was logged or matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    panels = [p for p in panels if any(k in h or f"eval_{k}" in h for h in log_history for k in p)]
    if not panels:
        return None
    fig = Figure(figsize=(4 * len(panels), 3.2))
    FigureCanvasAgg(fig)
    for i, keys in enumerate(panels, 1):
        ax = fig.add_subplot(1, len(panels), i)
        for k in keys:
            train = [(h["step"], h[k]) for h in log_history if k in h and "step" in h]
            evals = [(h["step"], h[f"eval_{k}"]) for h in log_history if f"eval_{k}" in h and "step" in h]
            if train:
                ax.plot(*zip(*train), label=k)
            if evals:
                ax.plot(*zip(*evals), "o", label=f"eval {k}")
        ax.set_xlabel("step")
        ax.set_title(" / ".join(keys), fontsize=9)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path + ".tmp.png", dpi=90)
    os.replace(path + ".tmp.png", path)
    return path
