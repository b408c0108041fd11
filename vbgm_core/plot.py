"""The paper's Figure 2 for one scored video: the video's rhythm above the generated music."""

from .files import atomic_path
from .metrics import bar_densities, grid_notes
from .music.instruments import GROUPS
from .video.plot import draw_rhythm

COLOURS = dict(zip(GROUPS, ("0.3", "tab:blue", "tab:orange", "tab:green", "tab:purple")))


def plot_score(rhythm, midi, path):
    """Video motion / density / visual beats, then the music's piano roll by instrument and its
    per-bar density against the video's targets; saved atomically as an image.

    Args:
        rhythm: the ``VideoRhythm`` the music was generated for.
        midi: the generated ``miditoolkit.MidiFile`` (tracks named after the groups).
        path: output image (``.png``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_m, ax_b, ax_roll, ax_d) = plt.subplots(
        4, 1, figsize=(12, 9), sharex=True, gridspec_kw={"height_ratios": [2, 1, 3, 1.2]})
    draw_rhythm(fig, ax_m, ax_b, rhythm)
    ax_b.set_xlabel("")
    seconds = 60.0 / (rhythm.tempo_bpm * midi.ticks_per_beat)
    for inst in midi.instruments:
        for n in inst.notes:
            ax_roll.plot([n.start * seconds, n.end * seconds], [n.pitch, n.pitch], lw=2,
                         color=COLOURS.get(inst.name, "k"), solid_capstyle="butt")
    ax_roll.set_ylabel("pitch")
    handles = [plt.Line2D([], [], color=COLOURS[i.name], lw=3, label=i.name)
               for i in midi.instruments if i.name in COLOURS]
    ax_roll.legend(handles=handles, loc="upper right", fontsize=8, ncol=len(handles))
    starts = [b.start_s for b in rhythm.bars] + [rhythm.n_bars * rhythm.bar_seconds]
    music = bar_densities(grid_notes(midi), rhythm.n_bars)
    ax_d.stairs([b.density for b in rhythm.bars], starts, color="tab:orange", lw=1.5,
                label="video's density")
    ax_d.stairs(music, starts, color="k", lw=1, ls="--", label="music's density")
    ax_d.set_ylim(0, 16.5)
    ax_d.set_ylabel("density")
    ax_d.set_xlabel("time (s)")
    ax_d.set_xlim(0, rhythm.duration_s)
    ax_d.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"{rhythm.source or 'clip'}: {rhythm.tempo_bpm:g} BPM, {rhythm.n_bars} bars",
                 fontsize=10, x=0.02, ha="left")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
