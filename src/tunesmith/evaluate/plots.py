"""The report's charts as PNG bytes (matplotlib's Agg renderer, no pyplot state), ready to embed as base64."""

from __future__ import annotations

import base64
import io

from tunesmith.evaluate.bootstrap import Difference

_COLOURS = {"better": "#2da44e", "worse": "#cf222e", "unclear": "#6e7781"}


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def differences_png(differences: list[Difference]) -> bytes:
    """One panel per metric: each baseline's tuned-minus-baseline difference with its interval, zero marked."""
    from matplotlib.figure import Figure

    metrics = list(dict.fromkeys(d.metric for d in differences))
    figure = Figure(figsize=(7, 0.4 + 0.9 * len(metrics)), dpi=100)
    for axes, metric in zip(figure.subplots(len(metrics), 1, squeeze=False)[:, 0], metrics):
        rows = [d for d in differences if d.metric == metric]
        for y, d in enumerate(rows):
            colour = _COLOURS["unclear" if not d.significant else "better" if d.tuned_better else "worse"]
            axes.errorbar([d.delta], [y], xerr=[[d.delta - d.low], [d.high - d.delta]], fmt="o", color=colour,
                          capsize=4)
        axes.axvline(0, color="#000000", linewidth=0.8)
        axes.set_yticks(range(len(rows)), [f"vs {d.baseline}" for d in rows])
        axes.set_ylim(-0.6, len(rows) - 0.4)
        axes.set_title(f"{metric}: tuned - baseline ({'lower' if rows[0].lower_is_better else 'higher'} is better)",
                       fontsize=9, loc="left")
        axes.tick_params(labelsize=8)
    figure.tight_layout()
    return _png(figure)
