"""Confusion matrix as a CSV (utf-8-sig, for Excel) and a PNG (matplotlib, Agg backend).

Chinese labels need a CJK font (``reporting.fonts.matplotlib_cjk_font``; Debian: fonts-noto-cjk). Without
one, non-ASCII labels are drawn as their index in the label list and the PNG says so; the CSV
always has the labels.
"""
from pathlib import Path

import pandas as pd

from pipeline.reporting.fonts import matplotlib_cjk_font
from pipeline.rundir import atomic_path, write_csv


def write_confusion(confusion, stem):
    """Write ``stem``.csv and ``stem``.png.

    Parameters
    ----------
    confusion : dict
        ``labels`` (list of str) and ``matrix`` (rows true, columns predicted).
    stem : Path
        Output path without suffix; its folder is created.

    Returns the two paths written.
    """
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    stem = Path(stem)
    labels, matrix = confusion["labels"], confusion["matrix"]
    frame = pd.DataFrame(matrix, index=pd.Index(labels, name="true \\ predicted"), columns=labels)
    write_csv(frame.reset_index(), stem.with_suffix(".csv"))
    font = matplotlib_cjk_font()
    ascii_only = all(label.isascii() for label in labels)
    names = labels if font or ascii_only else [str(i) for i in range(len(labels))]
    size = max(5.0, 0.45 * len(labels) + 2.5)
    with plt.rc_context({"font.family": [font, "sans-serif"] if font else ["sans-serif"]}):
        figure, axes = plt.subplots(figsize=(size + 1.5, size))
        image = axes.imshow(matrix, cmap="Blues")
        figure.colorbar(image, ax=axes, fraction=0.046)
        axes.set_xticks(range(len(labels)), names, rotation=90 if len(labels) > 8 else 45, ha="right")
        axes.set_yticks(range(len(labels)), names)
        top = max(max(row) for row in matrix) or 1
        for i, row in enumerate(matrix):
            for j, count in enumerate(row):
                if count:
                    axes.text(j, i, count, ha="center", va="center", fontsize=7,
                              color="white" if count > top / 2 else "black")
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        if names is not labels:
            axes.set_title(f"labels by index in {stem.with_suffix('.csv').name} (no CJK font installed)",
                           fontsize=8)
        figure.tight_layout()
        with atomic_path(stem.with_suffix(".png")) as tmp:
            figure.savefig(tmp, dpi=110, format="png")
        plt.close(figure)
    return stem.with_suffix(".csv"), stem.with_suffix(".png")
