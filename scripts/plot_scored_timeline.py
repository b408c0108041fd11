"""Draw a scored timeline as an editor sees it, read back from the file vbgm wrote.

    python scripts/plot_scored_timeline.py SCORED.otio|.xml|.fcpxml OUT.png

Every track of the timeline, top-most video first: clips as labelled boxes, gaps empty,
transitions hatched; the "vbgm score" track with a tick at each bar marker (its chords from the
marker comments where the format keeps them). Nothing is drawn from vbgm's own data: what the
picture shows is what the file holds.
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import opentimelineio as otio  # noqa: E402

from vbgm_core.figures import save_figure  # noqa: E402
from vbgm_core.timeline.write import SCORE_TRACK  # noqa: E402


def read(path):
    timeline = otio.adapters.read_from_file(str(path))
    if isinstance(timeline, otio.schema.SerializableCollection):
        timeline = next(iter(timeline.find_children(descended_from_type=otio.schema.Timeline)))
    return timeline


def draw(timeline, out):
    video = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    audio = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Audio]
    order = video[::-1] + audio   # the top-most picture first, as editors stack them
    labels = [f"V{len(video) - i}" for i in range(len(video))] + \
        [f"A{i + 1}" for i in range(len(audio))]
    fig, ax = plt.subplots(figsize=(13, 0.8 + 0.55 * len(order)))
    for row, track in enumerate(order):
        y = len(order) - 1 - row
        # FCP 7 XML keeps no track names: the score is the track whose clip has bar markers
        score = track.name == SCORE_TRACK or any(
            m.name.startswith("bar ") for c in track if isinstance(c, otio.schema.Clip)
            for m in c.markers)
        colour = "tab:orange" if score else ("tab:blue" if track.kind == "Video" else "tab:green")
        for item in track:
            span = track.range_of_child(item)
            t0, d = span.start_time.to_seconds(), span.duration.to_seconds()
            if isinstance(item, otio.schema.Transition):
                ax.add_patch(plt.Rectangle((t0, y - 0.35), d, 0.7, fill=False, hatch="///",
                                           ec="grey", lw=0))
                continue
            if isinstance(item, otio.schema.Gap):
                continue
            ax.add_patch(plt.Rectangle((t0, y - 0.35), d, 0.7, color=colour, alpha=0.5, lw=0))
            ax.text(t0 + 0.3, y, item.name[:24], va="center", fontsize=7, clip_on=True)
            if score:
                for m in item.markers:
                    t = t0 + m.marked_range.start_time.to_seconds()
                    ax.plot([t, t], [y - 0.35, y + 0.35], color="k", lw=0.6)
        label = labels[row] + (f" {track.name}" if track.name else "") + \
            (" (score)" if score and track.name != SCORE_TRACK else "")
        ax.text(-0.01, y, label, transform=ax.get_yaxis_transform(), ha="right", va="center",
                fontsize=8)
    ax.set_xlim(0, timeline.duration().to_seconds())
    ax.set_ylim(-0.6, len(order) - 0.4)
    ax.set_yticks([])
    ax.set_xlabel("timeline (s)")
    ax.set_title(f"{timeline.name}: the editor's tracks and vbgm's score (ticks: bar markers)",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, out)


if __name__ == "__main__":
    draw(read(Path(sys.argv[1])), Path(sys.argv[2]))
