"""nnx.plot's colours: matplotlib's tab10 palette for classes and metrics, and each class's lighter region colour."""

from __future__ import annotations

import numpy as np

# matplotlib's tab10: class k is PALETTE[k] for points and the same colour lightened by LIGHTEN for its region.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
LIGHTEN = 0.6  # fraction of the way from a class colour to white, for the regions
EDGE_COLOUR = "#222222"

PANELS = ("loss", "accuracy", "lr")
PANEL_TITLES = {"loss": "loss", "accuracy": "accuracy", "lr": "learning rate"}
METRIC_COLOURS = {
    "loss": PALETTE[0],
    "data_loss": PALETTE[1],
    "reg_loss": PALETTE[2],
    "accuracy": PALETTE[0],
    "lr": PALETTE[3],
}


def class_colours(n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB rows (points, regions): the palette up to 10 classes, then evenly spaced turbo colours."""
    from matplotlib import colormaps
    from matplotlib.colors import to_rgb

    if n_classes <= len(PALETTE):
        points = np.array([to_rgb(colour) for colour in PALETTE[:n_classes]])
    else:
        points = colormaps["turbo"](np.linspace(0.05, 0.95, n_classes))[:, :3]
    return points, points + (1.0 - points) * LIGHTEN
