"""The report's plots as PNG bytes (matplotlib, no display needed)."""

from __future__ import annotations

import io


def _figure():
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(6, 3.2), dpi=100)


def _png(plt, figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def histogram_png(histograms: dict[str, dict], title: str, unit: str) -> bytes:
    """One step histogram per split, from the report's precomputed edges and counts."""
    plt, figure, axes = _figure()
    for name, histogram in histograms.items():
        if histogram["counts"]:
            axes.stairs(histogram["counts"], histogram["edges"], label=name)
    axes.set_title(title)
    axes.set_xlabel(unit)
    axes.set_ylabel("examples")
    axes.legend()
    return _png(plt, figure)


def bars_png(counts: dict[str, int], title: str, xlabel: str) -> bytes:
    plt, figure, axes = _figure()
    names = list(counts)
    axes.bar(range(len(names)), [counts[n] for n in names])
    crowded = len(names) > 6
    axes.set_xticks(range(len(names)), names, rotation=30 if crowded else 0, ha="right" if crowded else "center")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("examples")
    return _png(plt, figure)
