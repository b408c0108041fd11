"""The `vbgm` command. Parsers live here; each command's work lives in its module, imported
only after parsing so that `--help` is instant and torch loads only when needed."""

import argparse
import contextlib
import json
import sys
from pathlib import Path

from .errors import InputError, VbgmError

EPILOG = """examples:
  vbgm prepare ../shared/data/midi_genre -o data/midi_genre
  vbgm analyze clip.mp4 -o rhythm.json --plot rhythm.png
  vbgm score clip.mp4 -o scored.mp4 --genre pop --seed 1
"""


def _number(p, *flags, kind=float, low=None, **kwargs):
    """Add a number option. Its value is read as text and checked by ``_read_numbers`` once
    the command line is parsed: a bad value is then one line, exit 2, like every other bad
    input (an argparse ``type`` prints the usage first), and NaN and the infinities, which
    ``float`` reads, are refused."""
    action = p.add_argument(*flags, **kwargs)
    numbers = dict(p.get_default("_numbers") or {})
    numbers[action.dest] = (max(action.option_strings, key=len), kind, low)
    p.set_defaults(_numbers=numbers)
    return action


def read_number(text, flag, kind=float, low=None):
    """``text`` as a finite float (``kind=float``) or an int, at least ``low``; else an
    InputError naming ``flag``."""
    import math

    try:
        number = kind(str(text).strip())
    except ValueError:
        what = "a number" if kind is float else "a whole number"
        raise InputError(f"{flag} must be {what}, not {text!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{flag} must be a finite number, not {text!r}")
    if low is not None and number < low:
        raise InputError(f"{flag} must be at least {low:g}, not {text}")
    return number


def _read_numbers(args):
    """The number options of the parsed command (``_number``) read and checked, in place."""
    for dest, (flag, kind, low) in getattr(args, "_numbers", {}).items():
        text = getattr(args, dest, None)
        if isinstance(text, str):
            setattr(args, dest, read_number(text, flag, kind, low))


def _add_prepare(sub):
    p = sub.add_parser("prepare", help="turn a folder of MIDI files into a training set",
                       description="Tokenize every MIDI file under MIDI_DIR (genre = sub-folder "
                       "name, or metadata.csv's genre column) into a compact dataset directory.")
    p.add_argument("midi_dir", help="folder of .mid/.midi files, one sub-folder per genre")
    p.add_argument("-o", "--output", required=True, help="dataset directory to write")
    _number(p, "--workers", kind=int, default=None, help="processes (default: all cores)")
    _number(p, "--limit", kind=int, default=None, help="use at most N files (smoke runs)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset")
    p.set_defaults(run=_run_prepare)


def _run_prepare(args):
    from .training.data import prepare

    summary = prepare(args.midi_dir, args.output, workers=args.workers, limit=args.limit,
                      overwrite=args.overwrite, progress=True)
    print(summary.describe())
    return 0


def _add_train(sub):
    p = sub.add_parser("train", help="train (or resume training) the music transformer",
                       description="Train a CMT on a dataset from `vbgm prepare`. The run "
                       "directory gets checkpoint.pt (resumable), model.safetensors (weights + "
                       "config), metrics.jsonl and loss.png. Multi-GPU: run under torchrun.")
    p.add_argument("--config", default=None,
                   help="preset (debug, default, paper) or YAML path; on --resume default: the "
                   "checkpoint's")
    p.add_argument("--data", required=True, help="dataset directory from `vbgm prepare`")
    p.add_argument("-o", "--output", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint.pt")
    p.add_argument("--init-from", default=None, metavar="MODEL",
                   help="start from these weights (e.g. RUN/model.safetensors of a finished run) "
                   "with a fresh optimizer and schedule: how to train a finished run further")
    _number(p, "--max-minutes", default=None,
            help="checkpoint and stop cleanly after this much wall time")
    _number(p, "--max-steps", kind=int, default=None,
            help="stop at this step (the schedule still follows the config)")
    _number(p, "--threads", kind=int, default=None, help="CPU threads for torch")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.set_defaults(run=_run_train)


def _run_train(args):
    from .training.train import train

    if args.config is None and not args.resume:
        args.config = "default"
    result = train(args.config, args.data, args.output, resume=args.resume,
                   init_from=args.init_from, max_minutes=args.max_minutes, max_steps=args.max_steps, threads=args.threads,
                   device=args.device, progress=True)
    print(result.describe())
    return 0


def _add_score_options(p):
    """Options shared by `score` and `batch`: the music's (generated from ScoreOptions) and
    where the model, the sound and the outputs come from."""
    from .options import ScoreOptions

    ScoreOptions.add_arguments(p)
    p.add_argument("--model", help="model file (default: the bundled model)")
    p.add_argument("--soundfont", help="General MIDI SoundFont (default: found on the system)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--progress", choices=("bar", "jsonl", "none"), default="bar",
                   help="progress bars on stderr, JSON lines on stdout (for editors), or none")


def _options(args):
    from .options import ScoreOptions

    return ScoreOptions.from_args(args)


def _add_score(sub):
    p = sub.add_parser(
        "score", help="compose and render a soundtrack for a video",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Analyse the video's rhythm, generate music that follows it with the "
        "Controllable Music Transformer, and render it.",
        epilog="examples:\n"
        "  vbgm score clip.mp4 -o clip_scored.mp4\n"
        "  vbgm score clip.mp4 --wav music.wav --midi music.mid --genre rock --seed 3\n"
        "  vbgm score clip.mp4 -o part.mp4 --start 2.5 --end 12 --instruments piano,strings\n"
        "  vbgm score clip.mp4 --midi music.mid   # no synthesizer needed\n"
        "  vbgm score cut.xml -o cut_scored.xml --media-dir /footage   # an editor's timeline\n"
        "\nA timeline (.otio, .xml from Premiere/Resolve, .fcpxml, .edl) gives a timeline: -o\n"
        "names the scored timeline (.otio, .xml or .fcpxml), the input plus a 'vbgm score'\n"
        "audio track with a marker at every bar line; the WAV, MIDI and report default to\n"
        "files beside it (docs/TIMELINES.md).")
    p.add_argument("video", help="video file, edit list (.json) or editor's timeline (.otio, "
                   ".xml, .fcpxml, .edl); only read, never modified")
    p.add_argument("-o", "--output", help="copy of the video with the music (.mp4, .mov, .mkv); "
                   "for a timeline input, the scored timeline (.otio, .xml, .fcpxml)")
    p.add_argument("--media-dir", action="append", default=[], metavar="DIR",
                   help="timeline input: a folder to find its media in when they are not where "
                   "it says (by file name; repeatable)")
    p.add_argument("--wav", help="write the music as WAV")
    p.add_argument("--midi", help="write the music as MIDI")
    p.add_argument("--report", help="write a JSON report (tempo, bars, control error, metrics)")
    p.add_argument("--plot", help="write a PNG of the video's rhythm above the music")
    p.add_argument("--stems", help="write one WAV per instrument into this new folder")
    _number(p, "--start", help="score from this time (s)")
    _number(p, "--end", help="score up to this time (s; past the video's end: to its end, "
            "with a warning)")
    p.add_argument("--continue-from", metavar="TAKE.mid", help="re-roll: keep this previous "
                   "take (a MIDI file vbgm wrote for this video) up to --keep-until, bit for "
                   "bit, and compose the rest anew (use another --seed)")
    _number(p, "--keep-until", metavar="S", help="re-roll: seconds of the previous take to "
            "keep (rounded up to its next bar line)")
    _add_score_options(p)
    p.set_defaults(run=_run_score)


def _progress(mode, stages=True):
    """The progress protocol (progress.py); ``stages=False`` for commands whose stages are
    not scoring's (their JSON lines announce none)."""
    from .progress import STAGES, Progress

    return Progress(mode, stages=STAGES if stages else None)


def _quiet_decoder():
    """Keep OpenCV's (and its FFmpeg's) per-frame decoder warnings off stderr: a broken
    stream would print hundreds of lines before our one-line error says what is wrong."""
    import os

    import cv2

    # Read by OpenCV when it first opens a file with FFmpeg; -8 = AV_LOG_QUIET. A user who
    # debugs a file can still set it.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _run_score(args):
    from .api import score_video
    from .files import Outputs, check_input_file, same_file
    from .timeline import is_timeline
    from .video.plot import IMAGE_SUFFIXES

    timeline = is_timeline(args.video)
    if timeline and args.output:   # the music and its report land beside the scored timeline
        out = Path(args.output)
        args.wav = args.wav or str(out.with_suffix(".wav"))
        args.midi = args.midi or str(out.with_suffix(".mid"))
        args.report = args.report or str(out.with_suffix(".json"))
    if not (args.output or args.wav or args.midi or args.stems):
        raise InputError("nothing to write: give -o OUT.mp4, --wav, --midi, --stems (or several)")
    check_input_file(args.video, "timeline" if timeline else "video")
    # score_video adds -o, --wav and --midi to this one transaction: all land, or none.
    run_outputs = Outputs(inputs=(args.video, args.model, args.soundfont, args.continue_from),
                          overwrite=args.overwrite)
    if args.report:
        # A report named as another output is that mistake ("named for two outputs", when
        # that output is declared), not a wrong extension.
        music = [p for p in (args.output, args.wav, args.midi) if p]
        run_outputs.add_file(args.report, "report", None if any(
            same_file(args.report, p) for p in music) else (".json",))
    if args.plot:
        run_outputs.add_file(args.plot, "plot", IMAGE_SUFFIXES)
    if args.stems:
        run_outputs.add_folder(args.stems, "stems folder")
    _quiet_decoder()
    progress = _progress(args.progress)
    try:
        with run_outputs:
            result = score_video(
                args.video, out_wav=args.wav, out_midi=args.midi,
                out_video=None if timeline else args.output,
                out_timeline=args.output if timeline else None, media_dirs=args.media_dir,
                options=_options(args), start=args.start, end=args.end,
                model=args.model, soundfont=args.soundfont, overwrite=args.overwrite,
                continue_from=args.continue_from, keep_until=args.keep_until,
                progress=progress, render=bool(args.output or args.wav),
                outputs=run_outputs)
            _write_extras(args, result, run_outputs)
    except VbgmError as e:
        progress.event(event="error", message=str(e), exit_code=e.exit_code)
        raise
    outputs = {k: str(v) for k, v in (("mp4", result.video_path), ("wav", result.wav_path),
                                      ("midi", result.midi_path),
                                      ("timeline", result.timeline_path),
                                      ("stems", args.stems)) if v}
    progress.event(event="done", **outputs, report=result.report)
    if args.progress != "jsonl":
        r = result.report
        print(f"{Path(args.video).name}: {r['duration_s']:.2f} s, {r['tempo_bpm']:.1f} BPM, "
              f"{r['n_bars']} bars, {r['genre']}; wrote {', '.join(outputs.values())}")
    return 0


def _write_extras(args, result, outputs):
    """--report, --plot, --stems: outputs beside the music, into the run's temporaries."""
    if args.report:
        outputs.temp(args.report).write_text(json.dumps(result.report, indent=1))
    if args.plot:
        from .plot import plot_score

        plot_score(result.rhythm, result.midi, outputs.temp(args.plot),
                   speech=result.report.get("speech"), gain_db=result.report.get("gain_db"))
    if args.stems:
        from .audio.render import render_stems

        render_stems(result.midi, outputs.temp(args.stems), soundfont=args.soundfont,
                     duration_s=result.rhythm.duration_s, overwrite=True)


def _add_batch(sub):
    p = sub.add_parser("batch", help="score many videos (scripted batch edits)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Score each video into OUTDIR/<name>.mp4 (+ .mid, .json); "
                       "a failure is reported and the others go on. Names are unique per input "
                       "(inputs with the same name keep their folders below OUTDIR); each clip's "
                       "seed comes from --seed and its file name, so a clip gets the same music "
                       "on any engine. OUTDIR/summary.json lists every clip's status.",
                       epilog="examples:\n"
                       "  vbgm batch shots/*.mp4 -o scored/ --jobs 2\n"
                       "  vbgm batch /shared/shots/*.mp4 -o /shared/scored --engine ray "
                       "--address auto")
    p.add_argument("videos", nargs="+", help="video files or editors' timelines (.otio, .xml, "
                   ".fcpxml, .edl: each gives a scored .otio and its WAV)")
    p.add_argument("--media-dir", action="append", default=[], metavar="DIR",
                   help="timelines: a folder to find their media in (by file name; repeatable)")
    p.add_argument("-o", "--output", required=True, help="folder for the results")
    _number(p, "--jobs", kind=int, low=1, default=None, help="videos scored at once: "
            "processes (local, default 1) or Ray actors (default: the cluster's CPUs); never "
            "more than the videos")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local process pool (default), or a Ray cluster (pip install 'vbgm[ray]')")
    p.add_argument("--address", default=None, help="Ray cluster: auto, HOST:PORT or "
                   "ray://HOST:10001 (default: $RAY_ADDRESS, else a cluster started on this "
                   "machine, else a private local Ray)")
    p.add_argument("--summary", default=None, help="summary JSON to write (default "
                   "OUTDIR/summary.json)")
    _add_score_options(p)
    p.set_defaults(run=_run_batch)


def _run_batch(args):
    from .batch.run import run_batch, sigterm_as_interrupt
    from .files import check_output_name

    check_output_name(args.output, "output folder", folder=True)   # a name too long: one line
    if args.summary:
        check_output_name(args.summary, "summary")
        if Path(args.summary).suffix.lower() != ".json":
            raise InputError(f"{args.summary}: the summary is JSON; its name must end in .json")
    local = lambda path: str(Path(path).absolute()) if path else None  # noqa: E731 (workers' cwd differs)
    progress = _progress(args.progress, stages=False)
    try:
        options = dict(options=_options(args), model=local(args.model),
                       soundfont=local(args.soundfont),
                       media_dirs=[local(d) for d in args.media_dir])
        with sigterm_as_interrupt():
            result = run_batch(args.videos, args.output, options, jobs=args.jobs,
                               engine=args.engine, address=args.address,
                               progress=args.progress, overwrite=args.overwrite,
                               summary=args.summary)
    except VbgmError as e:
        progress.event(event="error", message=str(e), exit_code=e.exit_code)
        raise
    if args.progress != "jsonl":
        rows = result.rows
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            main = r["outputs"] and (r["outputs"].get("mp4") or r["outputs"].get("timeline"))
            status = (f"ok  {r['seconds']:6.1f} s  {main}" if r["status"] == "ok"
                      else f"{r['status'].upper()}  {r['error']}")
            print(f"{r['name']:<{width}}  {status}")
        print(f"{len(rows) - result.failed} scored, {result.failed} failed; "
              f"summary: {result.summary_path}")
    return 1 if result.failed else 0


def _add_names(sub):
    for what in ("genres", "instruments"):
        p = sub.add_parser(what, help=f"list the {what} the model supports, one per line")
        p.add_argument("--model", help="model file (default: the bundled model)")
        p.set_defaults(run=_run_names, what=what)


def _run_names(args):
    from .music.instruments import GROUPS
    from .scorer import model_genres

    names = model_genres(args.model) if args.what == "genres" else GROUPS
    print("\n".join(names))
    return 0


def _add_analyze(sub):
    p = sub.add_parser("analyze", help="measure a video's rhythm (tempo, bar density, visual "
                       "beats, cuts) as JSON",
                       description="Analyse VIDEO's motion into the music's rhythm controls: "
                       "tempo, per-bar density, visual beats with strength, and cuts.")
    p.add_argument("video", help="video file (only read)")
    p.add_argument("-o", "--output", required=True, help="rhythm JSON to write")
    p.add_argument("--plot", default=None, help="also draw the rhythm as an image (e.g. .png)")
    _number(p, "--tempo", default=None, help="music tempo in BPM (default: chosen from the "
            "visual rhythm, 70-140)")
    _number(p, "--start", default=None, help="analyse from S seconds")
    _number(p, "--end", default=None, help="analyse up to S seconds (past the video's end: to "
            "its end, with a warning)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(run=_run_analyze)


def _run_analyze(args):
    from .files import Outputs, check_input_file
    from .video import analyze_video
    from .video.plot import IMAGE_SUFFIXES, plot_rhythm

    check_input_file(args.video, "video")
    outputs = Outputs(inputs=(args.video,), overwrite=args.overwrite)
    outputs.add_file(args.output, "rhythm JSON", (".json",))
    if args.plot:
        outputs.add_file(args.plot, "plot", IMAGE_SUFFIXES)
    _quiet_decoder()
    progress = _progress("bar")
    rhythm = analyze_video(args.video, tempo=args.tempo, start=args.start, end=args.end,
                           progress=progress.stage("analyze"))
    progress.close()
    with outputs:
        rhythm.to_json(outputs.temp(args.output))
        if args.plot:
            plot_rhythm(rhythm, outputs.temp(args.plot))
    print(f"{args.output}: {rhythm.duration_s:.2f} s, {rhythm.tempo_bpm:g} BPM "
          f"({rhythm.tempo_source}), {rhythm.n_bars} bars, "
          f"{len(rhythm.visual_beats)} visual beats, {len(rhythm.cuts)} cuts")
    return 0


def _add_eval(sub):
    from .options import MIX_OPTIONS, ScoreOptions

    p = sub.add_parser(
        "eval", help="measure the model on videos against baselines and the paper's numbers",
        description="For each video, generate with several control degrees and seeds, plus an "
        "unconditioned and a matched-training-song baseline, and measure them (MusDr metrics, "
        "control error, rhythm alignment). Writes report.md (the paper's Tables 1 and 4 beside "
        "ours), report.json, plots/, midi/ and rhythm/ into REPORT_DIR.")
    p.add_argument("videos", nargs="+", metavar="VIDEOS",
                   help="video files or folders of videos (only read)")
    p.add_argument("-o", "--output", required=True, metavar="REPORT_DIR",
                   help="report folder to create")
    p.add_argument("--model", help="model file (default: the bundled model)")
    p.add_argument("--data", help="dataset directory from `vbgm prepare`: enables the matched "
                   "baseline and the held-out reference row")
    # The music's options as `score` has them, but those the evaluation sweeps (control
    # degree, seed) and the mix (the evaluation measures the music alone).
    ScoreOptions.add_arguments(p, exclude=("control", "seed") + MIX_OPTIONS)
    _number(p, "--seeds", kind=int, default=None, help="seeds per control degree "
            "(default 3; 1 with --quick)")
    p.add_argument("--controls", help="comma-separated control degrees (default 0,0.3,0.7,1; "
                   "0,0.7,1 with --quick)")
    _number(p, "--reference-songs", kind=int, default=None,
            help="held-out songs in the reference row (default 50; 10 with --quick)")
    p.add_argument("--quick", action="store_true", help="smoke check: one seed, C in 0,0.7,1")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report folder")
    p.add_argument("--progress", choices=("bar", "jsonl", "none"), default="bar",
                   help="progress bars on stderr, JSON lines on stdout, or none")
    p.set_defaults(run=_run_eval)


def _run_eval(args):
    from .evaluation.runner import run_eval
    from .options import ScoreOptions

    controls = None
    if args.controls:
        controls = [read_number(c, "--controls") for c in args.controls.split(",") if c.strip()]
    progress = _progress(args.progress, stages=False)
    report = run_eval(args.videos, args.output, model=args.model, data=args.data,
                      options=ScoreOptions.from_args(args), seeds=args.seeds, controls=controls, quick=args.quick,
                      reference_songs=args.reference_songs, overwrite=args.overwrite,
                      progress=progress)
    progress.event(event="done", report=str(Path(args.output) / "report.json"))
    if args.progress != "jsonl":
        print(f"wrote {args.output}: report.md, report.json, plots/ ({len(report['videos'])} "
              f"video(s), {len(report['runs'])} pieces, {report['seconds']} s)")
    return 0


COMMANDS = (_add_prepare, _add_train, _add_score, _add_batch, _add_names, _add_analyze, _add_eval)


def get_parser():
    parser = argparse.ArgumentParser(
        prog="vbgm", description="Background music for video (Controllable Music Transformer).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


@contextlib.contextmanager
def _warnings_as_lines(command):
    """vbgm's own warnings (e.g. a range cut at the video's end) as one stderr line each,
    ``vbgm COMMAND: warning: ...``, every time; others' warnings as Python shows them."""
    import warnings

    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if category.__module__.startswith("vbgm_core"):
                print(f"vbgm {command}: warning: {message}", file=sys.stderr, flush=True)
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        warnings.filterwarnings("always", category=UserWarning, module=r"vbgm_core\.")
        yield


def main(argv=None):
    from .errors import Terminated
    from .files import cancel_on_signals

    args = get_parser().parse_args(argv)
    try:
        with cancel_on_signals(), _warnings_as_lines(args.command):  # SIGTERM: as Ctrl-C
            _read_numbers(args)
            return args.run(args)
    except VbgmError as e:
        print(f"vbgm {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except Terminated as e:
        print(f"vbgm {args.command}: terminated ({e})", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"vbgm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
