"""The `vbgm` command. Parsers live here; each command's work lives in its module, imported
only after parsing so that `--help` is instant and torch loads only when needed."""

import argparse
import sys

from .errors import VbgmError

EPILOG = """examples:
  vbgm prepare ../shared/data/midi_genre -o data/midi_genre
  vbgm analyze clip.mp4 -o rhythm.json --plot rhythm.png
  vbgm score clip.mp4 -o scored.mp4 --genre pop --seed 1
"""


def _add_prepare(sub):
    p = sub.add_parser("prepare", help="turn a folder of MIDI files into a training set",
                       description="Tokenize every MIDI file under MIDI_DIR (genre = sub-folder "
                       "name, or metadata.csv's genre column) into a compact dataset directory.")
    p.add_argument("midi_dir", help="folder of .mid/.midi files, one sub-folder per genre")
    p.add_argument("-o", "--output", required=True, help="dataset directory to write")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--limit", type=int, default=None, help="use at most N files (smoke runs)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.set_defaults(run=_run_prepare)


def _run_prepare(args):
    from .data import prepare

    summary = prepare(args.midi_dir, args.output, workers=args.workers, limit=args.limit,
                      overwrite=args.overwrite, progress=True)
    print(summary.describe())
    return 0


COMMANDS = (_add_prepare,)


def get_parser():
    parser = argparse.ArgumentParser(
        prog="vbgm", description="Background music for video (Controllable Music Transformer).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv=None):
    args = get_parser().parse_args(argv)
    try:
        return args.run(args)
    except VbgmError as e:
        print(f"vbgm {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"vbgm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
