"""Matplotlib on the Agg backend (no display on servers, CI or Kaggle), and atomic PNG writes."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from birdkit.io import atomic_write_bytes  # noqa: E402

DPI = 110
plt.rcParams.update(
    {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 7, "figure.titlesize": 12}
)


def save(fig: Figure, path: Path, colours: int | None = None) -> Path:
    """Render to PNG in memory, then write atomically so a report never links a half-written figure.

    `colours` quantises to a palette PNG, drawn once at the figure's own layout (no tight bounding box):
    spectrogram sheets are noise-textured, and as RGBA PNGs weigh ~4 MB and take seconds a page.
    """
    buf = io.BytesIO()
    if colours:
        from PIL import Image

        fig.set_dpi(DPI)
        fig.canvas.draw()
        img = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
        plt.close(fig)
        img.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(
            buf, format="PNG", compress_level=6
        )
    else:
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
        plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def message_axes(ax: plt.Axes, text: str) -> None:
    """An empty panel that says why it is empty, instead of a blank that looks like a bug."""
    ax.text(
        0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9, color="0.3", transform=ax.transAxes
    )
    ax.set_xticks([])
    ax.set_yticks([])
