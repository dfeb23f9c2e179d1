"""Measures without heavy imports: peak memory, CPU time, the document-length histogram."""

import os

import numpy as np

from medtrain.runtime.measure import cpu_seconds, length_histogram, peak_rss_mb


def test_memory_and_cpu_are_positive_and_grow():
    before = cpu_seconds()
    sum(i * i for i in range(300_000))
    assert cpu_seconds() > before
    assert peak_rss_mb() > 10


def test_histogram_counts_every_document(tmp_path):
    lengths = np.array([1, 2, 3, 10, 100, 1000, 1000])
    png = str(tmp_path / "h.png")
    lines = length_histogram(lengths, png)
    counts = [int(line.split()[1].replace(",", "")) for line in lines[:-1]]
    assert sum(counts) == len(lengths)
    assert lines[-1].startswith("documents 7; tokens: min 1, median 10")
    assert os.path.getsize(png) > 0
    assert length_histogram([]) == ["(no documents)"]


def test_a_program_started_by_a_large_process_reports_its_own_peak():
    """ru_maxrss survives exec (a child would report its starter's memory); VmHWM does not."""
    import subprocess
    import sys

    ballast = bytearray(400 << 20)   # 400 MB, touched
    ballast[::4096] = b"x" * len(ballast[::4096])
    out = subprocess.run([sys.executable, "-c", "from medtrain.runtime.measure import peak_rss_mb; print(peak_rss_mb())"],
                         capture_output=True, text=True, check=True)
    assert float(out.stdout) < 200, out.stdout
    del ballast
