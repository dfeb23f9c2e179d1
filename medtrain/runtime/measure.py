"""Measurements with no heavy imports (no torch, no transformers), for every process including
tokenizer workers: peak memory, CPU time, and the document-length histogram of a token store."""

from __future__ import annotations

import os
import resource


def peak_rss_mb() -> float:
    """Peak resident memory of this process (and of its finished children, e.g. tokenize workers).

    This process's own peak is Linux's VmHWM, the high-water mark of this program's memory; getrusage's
    ru_maxrss would also count the program that started it (it survives exec: a 1 GB benchmark that
    starts prepare_data.py would make prepare_data.py's peak 1 GB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        with open("/proc/self/status") as fh:
            own = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration, ValueError):
        pass
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return round(max(own, children), 1)


def release_free_memory() -> None:
    """Give memory that was freed (a dropped tokenizer, a parsed tokenizer.json) back to the system, so
    worker processes forked afterwards do not carry it: glibc keeps freed heap pages otherwise. No-op
    where the C library has no malloc_trim."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round(own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime, 3)


def length_histogram(lengths, png_path: str | None = None, bins: int = 12) -> list[str]:
    """A log-scale histogram of document lengths in tokens: text lines for the log, and a PNG."""
    import numpy as np

    lengths = np.asarray(lengths)
    if len(lengths) == 0:
        return ["(no documents)"]
    hi = max(2, int(lengths.max()))
    edges = np.unique(np.geomspace(1, hi + 1, bins + 1).astype(np.int64))
    counts, edges = np.histogram(lengths, bins=edges)
    width = max(counts.max(), 1)
    lines = [f"{int(a):>9,}-{int(b) - 1:<9,} {int(c):>10,} {'#' * int(40 * c / width)}"
             for a, b, c in zip(edges[:-1], edges[1:], counts)]
    lines.append(f"documents {len(lengths):,}; tokens: min {int(lengths.min()):,}, median "
                 f"{int(np.median(lengths)):,}, mean {lengths.mean():,.1f}, max {int(lengths.max()):,}")
    if png_path:
        try:  # the object API, not pyplot: pyplot alone costs ~300 MB of memory
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure

            fig = Figure(figsize=(7, 3.5))
            FigureCanvasAgg(fig)
            ax = fig.add_subplot()
            ax.hist(lengths, bins=edges, color="#3a7ca5")
            ax.set_xscale("log")
            ax.set_xlabel("document length (tokens)")
            ax.set_ylabel("documents")
            ax.set_title(f"{len(lengths):,} documents, {int(lengths.sum()):,} tokens")
            fig.tight_layout()
            fig.savefig(png_path + ".tmp.png", dpi=100)
            os.replace(png_path + ".tmp.png", png_path)
        except ImportError:  # matplotlib is optional for the PNG
            pass
    return lines
