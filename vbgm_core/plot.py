"""The paper's Figure 2 for one scored video: the video's rhythm above the generated music."""

from .figures import save_figure
from .metrics.grid import bar_densities, grid_notes
from .music.dynamics import bar_loudness
from .music.harmony import plan_from_midi
from .music.instruments import GROUPS, track_group
from .video.plot import draw_rhythm

COLOURS = dict(zip(GROUPS, ("0.3", "tab:blue", "tab:orange", "tab:green", "tab:purple")))


def plot_score(rhythm, midi, path, speech=None, gain_db=None):
    """Video motion / density / visual beats, then the music's piano roll by instrument, its
    loudness curve (mean velocity per bar) and chord plan (the MIDI's chord markers, written by
    ``HarmonyPlan.annotate``), and its per-bar density against the video's targets; saved
    atomically as an image.

    Args:
        rhythm: the ``VideoRhythm`` the music was generated for.
        midi: the generated ``miditoolkit.MidiFile`` (tracks named after the groups).
        path: output image (``.png``).
        speech, gain_db: the mix's speech segments and the music's gain breakpoints (the
            report's fields, audio/mix.py): drawn in a panel of their own when ``gain_db`` is given.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = [2, 1, 3, 1.1, 0.5, 1.2] + ([1.1] if gain_db else [])
    fig, axes = plt.subplots(len(ratios), 1, figsize=(12, 11 + (1.2 if gain_db else 0)),
                             sharex=True, gridspec_kw={"height_ratios": ratios})
    ax_m, ax_b, ax_roll, ax_v, ax_c, ax_d = axes[:6]
    draw_rhythm(fig, ax_m, ax_b, rhythm)
    ax_b.set_xlabel("")
    seconds = 60.0 / (rhythm.tempo_bpm * midi.ticks_per_beat)
    for inst in midi.instruments:
        for n in inst.notes:
            ax_roll.plot([n.start * seconds, n.end * seconds], [n.pitch, n.pitch], lw=2,
                         color=COLOURS.get(track_group(inst), "k"), solid_capstyle="butt")
    ax_roll.set_ylabel("pitch")
    handles = [plt.Line2D([], [], color=COLOURS[track_group(i)], lw=3, label=i.name)
               for i in midi.instruments if track_group(i) in COLOURS]
    ax_roll.legend(handles=handles, loc="upper right", fontsize=8, ncol=len(handles))
    starts = [b.start_s for b in rhythm.bars] + [rhythm.n_bars * rhythm.bar_seconds]
    ax_v.stairs(bar_loudness(midi, rhythm.n_bars), starts, color="tab:red", lw=1.5)
    ax_v.set_ylim(0, 128)
    ax_v.set_ylabel("velocity")
    chords = plan_from_midi(midi)
    ends = [t for t, _ in chords[1:]] + [rhythm.n_bars * 4 * midi.ticks_per_beat]
    for k, ((tick, name), end) in enumerate(zip(chords, ends)):
        ax_c.axvspan(tick * seconds, end * seconds, color=("0.85", "0.95")[k % 2])
        ax_c.text(tick * seconds + 0.05, 0.5, name, va="center", fontsize=8)
    key = midi.key_signature_changes[0].key_name if midi.key_signature_changes else ""
    ax_c.set_yticks([])
    ax_c.set_ylabel(f"chords\n{key}" if chords else "no plan", rotation=0, ha="right",
                    va="center", fontsize=8)
    music = bar_densities(grid_notes(midi), rhythm.n_bars)
    ax_d.stairs([b.density for b in rhythm.bars], starts, color="tab:orange", lw=1.5,
                label="video's density")
    ax_d.stairs(music, starts, color="k", lw=1, ls="--", label="music's density")
    ax_d.set_ylim(0, 16.5)
    ax_d.set_ylabel("density")
    if gain_db:
        from .audio.mix import plot_gain

        plot_gain(axes[6], speech, gain_db, rhythm.duration_s)
    axes[-1].set_xlabel("time (s)")
    ax_d.set_xlim(0, rhythm.duration_s)
    ax_d.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"{rhythm.source or 'clip'}: {rhythm.tempo_bpm:g} BPM, {rhythm.n_bars} bars",
                 fontsize=10, x=0.02, ha="left")
    fig.tight_layout()
    return save_figure(fig, path)
