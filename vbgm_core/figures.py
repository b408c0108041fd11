"""Saving matplotlib figures: the one way every plot in vbgm is written."""

from .files import atomic_path


def save_figure(fig, path, dpi=100, **savefig_kwargs):
    """Write ``fig`` to ``path`` atomically (a reader never sees half an image) and close it.

    The figure is closed even when saving fails: plots are made in loops (one per video in
    ``vbgm eval``) and pyplot keeps every open figure alive.

    Args:
        fig: a matplotlib ``Figure``, made with the Agg backend (no display needed).
        path: output image; matplotlib picks the format from the suffix (``.png``, ``.pdf``...),
            which the temporary file keeps.
        dpi: resolution.
        **savefig_kwargs: passed to ``Figure.savefig`` (e.g. ``bbox_inches="tight"``).

    Returns:
        ``path``.
    """
    import matplotlib.pyplot as plt  # already imported by whoever made the figure

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, **savefig_kwargs)
    finally:
        plt.close(fig)
    return path
