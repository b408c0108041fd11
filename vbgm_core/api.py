"""The one call the CLI and the editor plugins use: score a video.

    result = score_video("clip.mp4", out_wav="clip.wav", genre="pop", seed=1)

A thin wrapper over ``Scorer`` (scorer.py) and ``ScoreOptions`` (options.py): stages
``analyze`` (video rhythm), ``generate`` (controlled sampling), ``render`` (MIDI, FluidSynth
audio, optional mux); ``progress(stage, fraction)`` is called as each advances.
"""

from .options import ScoreOptions
from .scorer import DEFAULT_MODEL, SAMPLE_RATE, Scorer, ScoreResult

__all__ = ["score_video", "Scorer", "ScoreOptions", "ScoreResult", "DEFAULT_MODEL", "SAMPLE_RATE"]


def score_video(video, out_wav=None, out_midi=None, out_video=None, *, options=None,
                start=None, end=None, model=None, soundfont=None, overwrite=False, rhythm=None,
                render=True, progress=None, cancel=None, scorer=None, outputs=None,
                continue_from=None, keep_until=None, out_timeline=None, media_dirs=(),
                wav_reference=None, **option_kwargs):
    """Compose and render a soundtrack for a video file (or its [start, end) range), an
    editor's cut given as an edit list JSON (video/edit.py), or an editor's timeline
    (OpenTimelineIO: a .otio, .xml, .fcpxml or .edl file, or an ``otio.schema.Timeline``).

    Args:
        video: the video file, edit list or timeline (only read); may be None when
            ``rhythm`` is given (frames analysed by the caller, e.g. an edited MoviePy clip)
            and ``out_video`` is not.
        out_wav, out_midi, out_video: outputs to write; refused if they exist unless
            ``overwrite`` (which replaces only files, never an input), all written together at
            the end or not at all. ``out_video`` is a copy of the video with the music.
        out_timeline: for a timeline: the scored timeline to write (.otio, .xml, .fcpxml), the
            input plus a "vbgm score" audio track referring to ``out_wav`` (required then;
            the music as it plays in the edit, ducked where the mix says) and a marker at
            every bar line.
        media_dirs: for a timeline: folders to find its media in when they are not where it
            says (by file name).
        wav_reference: where the scored timeline says the WAV is (default ``out_wav``): the
            WAV's final place when the caller moves it there after the call (the batch).
        options: a ``ScoreOptions`` or a dict of its fields (genre, instruments, control,
            tempo, seed, sampling, key, mode, loudness, mix...); or give those as keyword
            arguments (``genre="rock"``).
            The mix settings apply to the muxed video; the WAV and MIDI are the music alone;
            the report has the speech found and the music's gain curve.
        start, end: range of the video to score, seconds.
        model: model path (default: the bundled model); ignored when ``scorer`` is given.
        soundfont: SoundFont path (default: found on the system).
        rhythm: an already analysed VideoRhythm (skips the analyze stage).
        render: synthesize audio; False makes MIDI only (no synthesizer needed), and then
            ``out_wav`` / ``out_video`` must be None.
        progress: callable(stage, fraction), stages ``progress.STAGES``.
        cancel: callable() → True to stop; raises Cancelled.
        scorer: a loaded ``Scorer`` to reuse (batch workers, the MoviePy effect).
        outputs: the caller's ``files.Outputs`` holding its other outputs (all land together
            when the caller's ``with`` ends); None: this call's own.
        continue_from, keep_until: re-roll: keep the previous take (a MIDI file vbgm wrote)
            up to the first bar line at or after ``keep_until`` seconds, bit for bit, and
            compose the rest anew (reroll.py).

    Returns:
        ScoreResult.
    """
    options = ScoreOptions.coerce(options)
    if option_kwargs:
        options = ScoreOptions.from_kwargs(options, **option_kwargs)
    scorer = scorer or Scorer.from_pretrained(model)
    return scorer.score(video, out_wav, out_midi, out_video, options=options, start=start,
                        end=end, soundfont=soundfont, overwrite=overwrite, rhythm=rhythm,
                        render=render, progress=progress, cancel=cancel, outputs=outputs,
                        continue_from=continue_from, keep_until=keep_until,
                        out_timeline=out_timeline, media_dirs=media_dirs,
                        wav_reference=wav_reference)
