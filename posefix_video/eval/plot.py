"""Bar plots of per-joint AP (and MOTA) with matplotlib's Agg backend, written atomically as PNG."""

from __future__ import annotations

import io
import os

import matplotlib

matplotlib.use("Agg")  # files only, never a window; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from posefix_video.atomic import write_bytes_atomic  # noqa: E402
from posefix_video.eval.posetrack import PoseTrackResult  # noqa: E402
from posefix_video.eval.posetrack_data import NUM_EVAL_JOINTS, POSEVAL_JOINTS  # noqa: E402


def plot_result(result: PoseTrackResult, path: str | os.PathLike, title: str | None = None) -> None:
    """Draws per-joint AP bars (and MOTA bars when the result has tracking) plus the Total, saved as a PNG.

    NaN values are drawn as missing bars and labeled "nan".
    """
    names = [*POSEVAL_JOINTS, "Total"]
    series = [("AP", result.ap)]
    if result.mota is not None:
        series.append(("MOTA", result.mota))
    x = np.arange(NUM_EVAL_JOINTS + 1)
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(12, 4.5), dpi=100)
    for k, (label, vals) in enumerate(series):
        vals = np.asarray(vals, dtype=np.float64)
        pos = x + (k - (len(series) - 1) / 2) * width
        ax.bar(pos, np.nan_to_num(vals, nan=0.0), width, label=label)
        for px, v in zip(pos, vals):
            ax.text(px, (0 if np.isnan(v) else max(v, 0)) + 1, "nan" if np.isnan(v) else f"{v:.1f}", ha="center",
                    va="bottom", fontsize=7, rotation=90)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set_ylabel("%")
    ax.set_ylim(min(0.0, float(np.nanmin([np.nanmin(v) for _, v in series] + [0.0]))) - 5, 135)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.legend(loc="upper left", ncol=2)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
