"""Batch edit with MoviePy 2: cut clips, join them with crossfades, add a CMT soundtrack.

    python examples/batch_edit.py examples/media/bigbuckbunny.mp4 other.mp4 -o edit.mp4 \\
        --cuts 3 --cut-length 2 --genre pop --seed 1

Each input gives ``--cuts`` pieces of ``--cut-length`` seconds, spread evenly over it; the
pieces, scaled to one height, are joined with ``--fade``-second crossfades; then
``CMTSoundtrack`` scores the edit as it is (its own frames, cuts and fades included) and the
result is written. Re-running the script with the same inputs and options reuses the cached
music (see docs/MOVIEPY.md).
"""

import argparse
import sys
from pathlib import Path

from moviepy import VideoFileClip, concatenate_videoclips, vfx

from vbgm_core.errors import InputError, VbgmError
from vbgm_core.options import ScoreOptions
from vbgm_core.files import atomic_path, check_output
from vbgm_moviepy import CMTSoundtrack


def get_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("videos", nargs="+", type=Path, help="input video files (only read)")
    p.add_argument("-o", "--out", type=Path, required=True, help="the edited MP4 to write")
    p.add_argument("--cuts", type=int, default=2, help="pieces cut from each input")
    p.add_argument("--cut-length", type=float, default=2.0, help="seconds per piece")
    p.add_argument("--fade", type=float, default=0.4, help="crossfade seconds between pieces")
    p.add_argument("--height", type=int, default=360, help="output height in pixels")
    ScoreOptions.add_arguments(p)   # every music and mix option of `vbgm score`
    p.add_argument("--model", help="model file (default: the bundled model)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return p


def cut(path, n, length, opened):
    """``n`` pieces of ``length`` seconds spread evenly over a video (fewer if it is short).

    Each piece gets its own reader (appended to ``opened``): pieces of one shared reader that
    play at once, as in a crossfade, would make it seek back and forth for every frame.
    """
    with VideoFileClip(str(path), audio=False) as probe:
        duration = probe.duration
    length = min(length, duration)
    n = max(1, min(n, int(duration // length)))
    gap = (duration - n * length) / n
    pieces = []
    for i in range(n):
        opened.append(VideoFileClip(str(path)))
        start = gap / 2 + i * (length + gap)
        pieces.append(opened[-1].subclipped(start, start + length))
    return pieces


def edit(paths, cuts, cut_length, fade, height, opened):
    """The pieces of all videos, joined with crossfades (MoviePy 2 effects)."""
    pieces = [piece.resized(height=height) for path in paths
              for piece in cut(path, cuts, cut_length, opened)]
    fade = min(fade, min(p.duration for p in pieces) / 2)
    pieces = [pieces[0]] + [p.with_effects([vfx.CrossFadeIn(fade)]) for p in pieces[1:]]
    return concatenate_videoclips(pieces, method="compose", padding=-fade)


def main(argv=None):
    args = get_parser().parse_args(argv)
    opened = []
    try:
        check_output(args.out, args.overwrite)
        for path in args.videos:
            if not path.is_file():
                raise InputError(f"{path}: no such video file")
        video = edit(args.videos, args.cuts, args.cut_length, args.fade, args.height, opened)
        scored = video.with_effects([CMTSoundtrack(options=ScoreOptions.from_args(args),
                                                   model=args.model)])
        info = scored.cmt_info
        origin = "from the cache" if info.cache_hit else "generated"
        print(f"{video.duration:.2f} s edit, {info.rhythm.tempo_bpm:.0f} BPM, "
              f"{len(info.rhythm.cuts)} cuts; music {origin}", file=sys.stderr)
        with atomic_path(args.out) as tmp:
            scored.write_videofile(str(tmp), fps=video.fps or 25, codec="libx264",
                                   audio_codec="aac", logger=None)
    except VbgmError as e:
        print(f"batch_edit: {e}", file=sys.stderr)
        return e.exit_code
    finally:
        for clip in opened:
            clip.close()
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
