"""Picture of a ``VideoRhythm`` on one time axis (like the paper's Figure 2, top half)."""

from ..figures import save_figure

# Image formats matplotlib writes without extra packages (it picks the format by extension).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg", ".eps", ".ps", ".tif", ".tiff")


def plot_rhythm(rhythm, path, title=None):
    """Draw motion, per-bar density, visual beats (by strength) and cuts; save as an image.

    Args:
        rhythm: ``VideoRhythm``.
        path: output image (format from the suffix, e.g. ``.png``); written atomically.
        title: figure title (default: the source file and tempo).

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_m, ax_b) = plt.subplots(2, 1, figsize=(12, 5), sharex=True,
                                     gridspec_kw={"height_ratios": [2, 1]})
    draw_rhythm(fig, ax_m, ax_b, rhythm)
    name = title or f"{rhythm.source or 'clip'}: {rhythm.tempo_bpm:g} BPM, {rhythm.n_bars} bars"
    fig.suptitle(name, fontsize=10, x=0.02, ha="left")
    fig.tight_layout()
    return save_figure(fig, path)


def draw_rhythm(fig, ax_m, ax_b, rhythm):
    """Motion + bar density on ``ax_m``, visual beats + cuts on ``ax_b``, legend on ``fig``."""
    t = [m[0] for m in rhythm.motion]
    f = [m[1] for m in rhythm.motion]
    ax_m.plot(t, f, color="tab:blue", lw=0.8, label="motion F (short sides/s)")
    ax_m.set_ylabel("motion")
    ax_d = ax_m.twinx()
    starts = [b.start_s for b in rhythm.bars] + [rhythm.n_bars * rhythm.bar_seconds]
    dens = [b.density for b in rhythm.bars]
    ax_d.stairs(dens, starts, color="tab:orange", lw=1.5, label="bar density")
    ax_d.set_ylim(0, 16.5)
    ax_d.set_ylabel("density (0-16)")
    for s in starts:
        ax_m.axvline(s, color="0.85", lw=0.5, zorder=0)
    beats = [b for b in rhythm.visual_beats if not b.cut]
    if beats:  # a still picture or a very short clip has none (and stem() fails on nothing)
        ax_b.stem([b.time_s for b in beats], [b.strength for b in beats], linefmt="tab:green",
                  markerfmt="o", basefmt=" ", label="visual beat (strength)")
    for i, c in enumerate(rhythm.cuts):
        for ax in (ax_m, ax_b):
            ax.axvline(c, color="tab:red", lw=1.2, ls="--", label="cut" if i == 0 and ax is ax_b
                       else None)
    ax_b.set_ylabel("strength")
    ax_b.set_xlabel("time (s)")
    ax_b.set_xlim(0, rhythm.duration_s)
    handles = sum((a.get_legend_handles_labels()[0] for a in (ax_m, ax_d, ax_b)), [])
    labels = sum((a.get_legend_handles_labels()[1] for a in (ax_m, ax_d, ax_b)), [])
    fig.legend(handles, labels, loc="upper right", fontsize=8)
