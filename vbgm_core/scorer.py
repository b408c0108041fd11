"""``Scorer``: a loaded model and everything that goes with it, scoring videos with options.

    scorer = Scorer.from_pretrained()                  # the bundled model (or a path)
    rhythm = scorer.analyze("clip.mp4")                # or analyze(frames=..., duration_s=...)
    tokens, midi = scorer.generate(rhythm, ScoreOptions(genre="rock", seed=3))
    audio = scorer.render(midi, rhythm)

The shape of audiocraft's ``MusicGen``: the object owns the model, its genre list, instrument
names and the data statistics the model was trained with (bar density and beat strength
distributions for the video → control mapping, each instrument's pitch range for the sampler),
so a user's own model from ``vbgm train`` is used with its own statistics. Models written before
the statistics travelled with them fall back to the bundled ones.
"""

import json
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, ModelLoadError, RenderError
from .music.instruments import GROUPS
from .options import ScoreOptions
from .source import EDIT, TIMELINE, Source

ASSETS = Path(__file__).resolve().parent / "assets"
DEFAULT_MODEL = ASSETS / "model.safetensors"
BUNDLED_STATS = ASSETS / "music_stats.json"
SAMPLE_RATE = 44100
KEEP_AUDIO_S = 60.0   # ScoreResult.audio keeps the streamed music up to this long


@dataclass(frozen=True)
class MusicStats:
    """The training music's statistics a model was made with.

    Attributes:
        density_hist: bar count per density 0..16.
        strength_hist: beat count per strength 0..24.
        pitch_range: instrument group → (lowest, highest) MIDI pitch the sampler allows.
        source: where they come from (a dataset, or the bundled file).
    """

    density_hist: tuple
    strength_hist: tuple
    pitch_range: dict
    source: str

    @classmethod
    def from_dict(cls, data, where):
        try:
            density = tuple(float(x) for x in data["density_hist"])
            strength = tuple(float(x) for x in data["strength_hist"])
            pitch = {g: (int(lo), int(hi)) for g, (lo, hi) in data["pitch_range"].items()}
        except (KeyError, TypeError, ValueError) as e:
            raise ModelLoadError(f"{where}: malformed music statistics ({e})") from None
        if len(density) != 17 or len(strength) != 25 or sum(density[1:]) <= 0 \
                or sum(strength[1:]) <= 0 or set(pitch) != set(GROUPS):
            raise ModelLoadError(f"{where}: music statistics need 17 density and 25 strength "
                                 f"counts and a pitch range for each of {', '.join(GROUPS)}")
        return cls(density, strength, pitch, str(data.get("source", where)))

    def to_dict(self):
        return {"density_hist": list(self.density_hist), "strength_hist": list(self.strength_hist),
                "pitch_range": {g: list(r) for g, r in self.pitch_range.items()},
                "source": self.source}

    def histograms(self):
        """The form the video → control mapping takes (``video.mapping``)."""
        return {"density_hist": np.asarray(self.density_hist),
                "strength_hist": np.asarray(self.strength_hist)}


def bundled_stats():
    """The statistics of the bundled model's training set (for models that carry none)."""
    try:
        return MusicStats.from_dict(json.loads(BUNDLED_STATS.read_text()), BUNDLED_STATS)
    except OSError as e:
        raise ModelLoadError(f"{BUNDLED_STATS}: unreadable ({e}); reinstall vbgm") from None


@dataclass
class ScoreResult:
    """What a scoring run made. Paths are None for outputs that were not asked for."""

    midi: object            # miditoolkit.MidiFile
    # float32 [n, 2]; None when not rendered, and when the music was streamed to its files
    # and not kept: a piece longer than KEEP_AUDIO_S written to a WAV or a video, or scored
    # inside a caller's own Outputs (the CLI: its stems). A plain call that asks for no
    # audio file (the MoviePy effect) always gets the array: then it is the result.
    audio: np.ndarray | None
    sample_rate: int
    report: dict
    rhythm: object          # VideoRhythm
    tokens: np.ndarray      # (N, 7) compound words
    wav_path: Path | None = None
    midi_path: Path | None = None
    video_path: Path | None = None
    timeline_path: Path | None = None


def resolve_model_path(path=None):
    """The model file a scorer would load (the bundled one by default); InputError if missing."""
    model = Path(path) if path else DEFAULT_MODEL
    try:
        found = model.is_file()
    except OSError as e:   # a name too long, ...: the system's answer, not a "no"
        name = str(model) if len(str(model)) <= 120 else f"{str(model)[:60]}..."
        raise ModelLoadError(f"{name}: cannot be read ({e.strerror})") from None
    if not found:
        if path:
            raise ModelLoadError(f"{model}: model file not found")
        raise ModelLoadError(f"{model}: the bundled model is missing (reinstall vbgm, or pass "
                             "--model PATH to a model made by `vbgm train`)")
    return model


def model_info(path=None):
    """The ``extra`` metadata of a model file (genres, music statistics, provenance), read from
    the safetensors header alone: `vbgm genres` and input checks answer without importing torch."""
    from .model.header import check_header, read_header

    path = resolve_model_path(path)
    return check_header(read_header(path), path)[1]


def model_genres(path=None):
    """Genre names a model file was trained on."""
    genres = model_info(path).get("genres")
    if not genres:
        raise ModelLoadError(f"{resolve_model_path(path)}: the model names no genres")
    return list(genres)


class _ModelLoading:
    """A model file loading in a thread (``checkpoint.load_model``: torch's import and the
    weights). Not a daemon: a process that ends meanwhile waits for it, never killing it
    half-way through an import."""

    def __init__(self, path):
        import threading

        self.path = path
        self.started = time.time()
        self.ended = None
        self.waited_s = 0.0
        self._value = self._error = None
        self._thread = threading.Thread(target=self._load, name="vbgm-model-load")
        self._thread.start()

    def _load(self):
        try:
            from .model.checkpoint import load_model

            self._value = load_model(self.path)[0]
        except BaseException as e:   # noqa: BLE001 - raised in the thread that uses the model
            self._error = e
        finally:
            self.ended = time.time()

    def result(self):
        t0 = time.perf_counter()
        self._thread.join()
        self.waited_s = time.perf_counter() - t0
        _LOADS.append(self)
        if self._error is not None:
            raise self._error
        return self._value


_LOADS = []   # finished background loads, for the run's timings


class Scorer:
    """A model ready to score videos. Make one with :meth:`from_pretrained`; reuse it."""

    def __init__(self, model, extra, path):
        if not extra.get("genres"):
            raise ModelLoadError(f"{path}: the model names no genres")
        self.model = model     # a CMT, or a _ModelLoading that becomes one on first use
        self.path = Path(path)
        self.genres = list(extra["genres"])
        self.instruments = GROUPS
        self.stats = (MusicStats.from_dict(extra["music_stats"], path)
                      if "music_stats" in extra else bundled_stats())
        self.info = extra

    @property
    def model(self):
        """The CMT; waits for a background load (``from_pretrained``) to end, raising its
        error (ModelLoadError) here."""
        if isinstance(self._model, _ModelLoading):
            self._model = self._model.result()
        return self._model

    @model.setter
    def model(self, value):
        self._model = value

    @classmethod
    def from_pretrained(cls, path=None, background=True):
        """Load a model file from ``vbgm train`` (default: the bundled model).

        The header (genres, statistics; ``model_info``'s checks) is read now; with
        ``background`` the weights load (torch's import included, ~1-2 s) in a thread while
        the caller goes on, e.g. analysing the video: the first use of ``.model`` waits for
        them and raises their error then (a damaged weight: ModelLoadError, exit 3).
        """
        path = resolve_model_path(path)
        if background:
            return cls(_ModelLoading(path), model_info(path), path)
        from .model.checkpoint import load_model

        model, extra = load_model(path)
        return cls(model, extra, path)

    @property
    def default_genre(self):
        """The genre used when none is asked for: pop where the model has it."""
        return "pop" if "pop" in self.genres else self.genres[0]

    def resolve(self, options):
        """(genre name, genre index, instrument tuple) of ``options`` for this model."""
        genre = options.genre or self.default_genre
        if genre not in self.genres:
            raise InputError(f"unknown genre {genre!r}; the model knows: {', '.join(self.genres)}")
        return genre, self.genres.index(genre), options.instruments or GROUPS

    def score(self, video, out_wav=None, out_midi=None, out_video=None, *, options=None,
              start=None, end=None, soundfont=None, overwrite=False, rhythm=None, render=True,
              progress=None, cancel=None, outputs=None, continue_from=None, keep_until=None,
              out_timeline=None, media_dirs=(), wav_reference=None):
        """Compose and render a soundtrack for a video file, its [start, end) range, an edit
        list or an editor's timeline (source.py). See ``api.score_video``."""
        from .audio.mix import plan_mix
        from .files import Outputs

        options = ScoreOptions.coerce(options)
        if video is None and (rhythm is None or out_video is not None):
            raise InputError("score needs a video file (or a rhythm, without out_video)")
        source = Source.open(video, start, end, media_dirs) if video is not None else None
        # Every output is checked (against the inputs, each other, its extension) before any
        # work, and written to a temporary: all land together at the end, or none.
        inputs = (*(source.inputs if source else ()), self.path, soundfont, continue_from)
        keep_audio = outputs is None and out_wav is None and out_video is None
        if outputs is None:
            outputs = Outputs(inputs=inputs, overwrite=overwrite)
        else:
            outputs.add_inputs(inputs)
        self._declare_outputs(outputs, source, out_wav, out_midi, out_video, out_timeline,
                              render, soundfont)
        prefix = self._kept_prefix(continue_from, keep_until)
        if prefix is not None:
            options = prefix.continued_options(options)
        self.resolve(options)   # an unknown genre fails before any work
        report = progress or (lambda stage, fraction: None)
        timings, stages = {}, _Stages()

        t0 = time.perf_counter()
        if rhythm is None:
            rhythm = source.analyze(self, options.tempo, lambda f: report("analyze", f))
        timings["analyze_s"] = time.perf_counter() - t0
        stages.add("analyze", t0)
        report("analyze", 1.0)
        rhythm = rhythm.with_min_density(options.min_density)

        g0 = t0 = time.perf_counter()
        tokens, midi = self.generate(rhythm, options, progress=lambda f: report("generate", f),
                                     cancel=cancel, prefix=prefix)
        timings["generate_s"] = time.perf_counter() - t0
        for load in _LOADS:   # the model loaded in the background (from_pretrained)
            stages.append({"name": "model_load", "start": round(load.started, 3),
                           "end": round(load.ended, 3), "waited_s": round(load.waited_s, 3)})
        _LOADS.clear()

        stages.add("generate", g0)
        t0 = time.perf_counter()
        result = ScoreResult(midi, None, SAMPLE_RATE, {}, rhythm, tokens)
        facts = dict(video=str(source.path) if source and source.path else None,
                     source=source.kind if source else "frames", start_s=rhythm.start_s,
                     **({"continued_from": {"take": str(continue_from),
                                            "kept_s": prefix.boundary_s}}
                        if prefix is not None else {}))
        # Side jobs on the second core while the music renders: the report's MIDI metrics,
        # and for ducking the speech (ffmpeg + silero-vad). Frames analysed by the caller
        # (MoviePy) have no source to search: the caller mixes.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="vbgm-side") as side:
            mix_job = side.submit(plan_mix, options, rhythm.duration_s,
                                  source.speech_finder(rhythm)) if source is not None else None
            report_job = side.submit(self.report, midi, rhythm, tokens, options, **facts)
            with outputs:  # written to temporaries; installed together (or all removed)
                if out_midi is not None:
                    midi.dump(str(outputs.temp(out_midi)))
                    result.midi_path = Path(out_midi)
                measured = muxed = None
                if render:   # (the speech is found while the music is synthesized)
                    measured, muxed = self._render_outputs(
                        result, midi, rhythm, options, soundfont, outputs, source, mix_job,
                        out_wav, out_video, out_timeline, report, stages,
                        keep_audio or rhythm.duration_s <= KEEP_AUDIO_S)
                mix = mix_job.result() if mix_job is not None else None
                t2 = time.perf_counter()
                result.report = report_job.result()
                if measured is not None:
                    result.report["quality"].update(_json_numbers(measured))
                if muxed is not None:
                    result.report["quality"].update(_json_numbers(
                        {"muxed_loudness_lufs": muxed["loudness_lufs"],
                         "muxed_true_peak_dbtp": muxed["true_peak_dbtp"],
                         "mux_trim_db": muxed["trim_db"], "mux_encodes": muxed["encodes"]}))
                if mix is not None:
                    result.report.update(mix.report())
                if out_timeline is not None:
                    self._write_timeline(source, result, wav_reference or out_wav,
                                         outputs.temp(out_timeline), out_timeline)
                    result.timeline_path = Path(out_timeline)
        timings["render_s"] = time.perf_counter() - t0
        report("render", 1.0)
        timings["tokens_per_s"] = len(tokens) / max(timings["generate_s"], 1e-9)
        result.report["timings"] = {k: round(v, 3) for k, v in timings.items()}
        stages.add("report", t2)
        result.report["timings"]["stages"] = list(stages)
        return result

    def _render_outputs(self, result, midi, rhythm, options, soundfont, outputs, source, mix_job,
                        out_wav, out_video, out_timeline, report, stages, keep):
        """The music streamed from the synthesizer to the WAV, the muxed video and (when
        kept) ``result.audio``: synthesis and mastering (audio/master.py), then one final
        pass feeding every output and measuring what it plays. Returns (the music's
        measurement, the muxed audio's measurement or None). ``mix_job``: the future of the
        run's ``Mix`` (the speech, for ducking, is found meanwhile), None without a source.
        ``keep``: the music also goes to ``result.audio``."""
        from .audio.master import MUX_TRUE_PEAK_DBTP, TRUE_PEAK_DBTP
        from .audio.mix import mux_music
        from .audio.render import WavWriter, render_piece

        t0 = time.perf_counter()
        times = {}
        # The music in the muxed copy gets its own rendition, as loud, under a lower ceiling:
        # the AAC encode adds up to ~0.6 dB of true peak (checked after it, mux.py).
        muxing = out_video is not None and mix_job is not None
        with render_piece(midi, SAMPLE_RATE, soundfont=soundfont, duration_s=rhythm.duration_s,
                          loudness=options.loudness, timings=times,
                          mux_ceiling_db=MUX_TRUE_PEAK_DBTP if muxing else None) as piece:
            stages.add("synthesize", t0, t0 + times["synth_s"], times["synth_cpu"])
            stages.add("master", t0 + times["synth_s"])
            report("render", 0.5)
            mix = mix_job.result() if mix_job is not None else None
            t1 = time.perf_counter()
            sinks, closers = [], []
            if keep:
                result.audio = np.empty((piece.n, 2), np.float32)
                sinks.append(lambda block, start: result.audio.__setitem__(
                    slice(start, start + len(block)), block))
            if out_wav is not None:
                writer = WavWriter(outputs.temp(out_wav), SAMPLE_RATE)
                closers.append(writer.close)
                # A timeline's score is the music as it plays in the edit: mixed already.
                sinks.append((lambda block, start: writer(mix.music.apply_block(
                    block, start, SAMPLE_RATE))) if out_timeline else writer)
                result.wav_path = Path(out_wav)
            muxed = None
            try:
                if out_video is not None:
                    def play(sink, trim_db, first):
                        gain, ceiling, _ = piece.mux or piece.rendition()
                        piece.play(sinks if first else [], measure=first,
                                   also=[((gain, ceiling, trim_db), [sink])])
                    temp = outputs.temp(out_video)
                    try:
                        muxed = mux_music(source.path, play, SAMPLE_RATE, temp, mix,
                                          start_s=rhythm.start_s,
                                          end_s=rhythm.start_s + rhythm.duration_s,
                                          ceiling_dbtp=TRUE_PEAK_DBTP)
                    except RenderError as e:   # named as the user named it
                        raise RenderError(str(e).replace(str(temp), str(out_video))) from None
                    result.video_path = Path(out_video)
                else:
                    piece.play(sinks)
            finally:
                for close in closers:
                    close()
            stages.add("play+encode" if out_video is not None else "play", t1)
            return piece.measured, muxed

    def _declare_outputs(self, outputs, source, out_wav, out_midi, out_video, out_timeline,
                         render, soundfont):
        """Add the run's music outputs to ``outputs``, checking what the source allows."""
        from .audio.mux import VIDEO_SUFFIXES
        from .audio.render import find_soundfont
        from .files import check_soundfont
        from .timeline.write import WRITTEN_SUFFIXES

        kind = source.kind if source is not None else None
        if out_video is not None and kind in (EDIT, TIMELINE):
            raise InputError(f"{source.path}: an edit list or a timeline is scored into a WAV/"
                             "MIDI (and a timeline into a scored timeline); -o as a video "
                             "needs a video file")
        if out_timeline is not None and kind != TIMELINE:
            raise InputError("a scored timeline needs a timeline to score (.otio, .xml, "
                             ".fcpxml, .edl)")
        if out_timeline is not None and out_wav is None:
            raise InputError("a scored timeline refers to the music as a WAV: give its path")
        for out, what, suffixes in ((out_midi, "MIDI output", (".mid", ".midi")),
                                    (out_wav, "WAV output", (".wav",)),
                                    (out_video, "video output", VIDEO_SUFFIXES),
                                    (out_timeline, "timeline output", WRITTEN_SUFFIXES)):
            if out is not None:
                outputs.add_file(out, what, suffixes)
        if soundfont is not None:
            check_soundfont(soundfont)
        if render:
            find_soundfont(soundfont)  # no SoundFont installed: fails now, not after generation
        if not render and (out_wav is not None or out_video is not None):
            raise InputError("a WAV or video output needs rendering (render=True)")

    @staticmethod
    def _kept_prefix(continue_from, keep_until):
        """The previous take's kept bars for a re-roll (music/reroll.py), or None."""
        if (continue_from is None) != (keep_until is None):
            raise InputError("a re-roll needs both the previous take (--continue-from) and the "
                             "time to keep it until (--keep-until)")
        if continue_from is None:
            return None
        from .files import check_input_file
        from .music.reroll import load_prefix

        return load_prefix(check_input_file(continue_from, "previous take"), keep_until)

    @staticmethod
    def _write_timeline(source, result, wav_path, out_path, name):
        """The scored timeline (into ``out_path``, the temporary of the output ``name``): the
        editor's own with the music WAV on a new track and a marker at every bar line, its
        chords as the comment."""
        from .timeline import write_scored_timeline

        r = result.report
        write_scored_timeline(source.timeline.timeline, out_path, Path(wav_path).resolve(),
                              r["duration_s"], r["bar_times_s"], chords=bar_chords(r),
                              overwrite=True, name=name)

    # -- the three stages ----------------------------------------------------------------------
    def analyze(self, video=None, *, frames=None, duration_s=None, tempo=None, start=None,
                end=None, progress=None):
        """The video's rhythm, mapped to this model's control values.

        Args:
            video: a video file (only read); or None with ``frames``.
            frames: iterable of ``(time_s, RGB frame)`` (e.g. an edited MoviePy clip), with
                ``duration_s``.
            tempo: BPM, or None to choose it from the video.
            start, end: range of the file, seconds.
            progress: callable(fraction).
        """
        from .video.rhythm import analyze_frames, analyze_video

        stats = self.stats.histograms()
        if frames is not None:
            return analyze_frames(frames, duration_s, tempo=tempo, progress=progress,
                                  music_stats=stats)
        if video is None:
            raise InputError("analyze needs a video file or frames")
        return analyze_video(video, tempo=tempo, start=start, end=end, progress=progress,
                             music_stats=stats)

    def generate(self, rhythm, options=None, progress=None, cancel=None, timing=True,
                 prefix=None):
        """The music for an analysed video: (tokens, MIDI cut at the video's end and finished:
        key and chords marked, silences bridged, the last chord ringing out, velocities).

        Args:
            rhythm: the video's ``VideoRhythm``.
            options: ``ScoreOptions`` (default: the defaults).
            progress: callable(fraction), once per bar.
            cancel: callable() → True to stop (raises Cancelled).
            timing: False withholds the beat-timing encoding (with ``control=0``: the
                evaluation's unconditioned baseline).
            prefix: a ``reroll.KeptPrefix``: its bars are kept as they are and the model
                continues from them (its tempo must be the rhythm's).

        """
        from .video.rhythm import VideoRhythm

        if not isinstance(rhythm, VideoRhythm):
            raise TypeError("Scorer.generate needs the video's rhythm, a vbgm_core.video.rhythm."
                            f"VideoRhythm (from Scorer.analyze), not {type(rhythm).__name__}")
        options = ScoreOptions.coerce(options)
        import torch

        from .model.cmt import set_cpu_generation_threads
        from .music.finish import finish
        from .music.form import FormPlan
        from .music.orchestration import apply_programs
        from .music.sampler import ControlledSampler, Targets
        from .music.tokenizer import CPTokenizer

        options = options or ScoreOptions()
        _, genre_id, instruments = self.resolve(options)
        seed = options.seed % 2**64   # negative seeds are valid; the generators need >= 0
        plan = self.harmony_plan(rhythm, options)
        threads = torch.get_num_threads()
        set_cpu_generation_threads()
        try:
            sampler = ControlledSampler(self.model, genre_id, instruments, options.control,
                                        seed, options.sampling, timing,
                                        pitch_range=self.stats.pitch_range, harmony=plan,
                                        min_density=options.min_density,
                                        repetition=options.repetition,
                                        form=FormPlan.for_rhythm(rhythm, seed))
            tokens = sampler.generate(Targets.from_rhythm(rhythm), progress, cancel,
                                      prefix=None if prefix is None else prefix.tokens)
        finally:
            torch.set_num_threads(threads)
        midi = clip_midi(CPTokenizer().decode(tokens, rhythm.tempo_bpm), rhythm.duration_s,
                         rhythm.tempo_bpm)
        midi = apply_programs(finish(midi, rhythm, plan, seed), self.programs(options))
        if prefix is not None:
            from .music.reroll import splice

            midi = splice(prefix, midi)
        return tokens, midi

    def harmony_plan(self, rhythm, options):
        """The piece's key, mode and chord per bar (music/harmony.py): drawn from the genre's
        songs and the seed unless the options fix the key or mode; the same inputs give the
        same plan. With repetition, its phrases are the form plan's (music/form.py), and a
        returning phrase replays its section's chords."""
        from .music.form import FormPlan
        from .music.harmony import HarmonyPlan

        genre, _, _ = self.resolve(options)
        seed = options.seed % 2**64
        form = FormPlan.for_rhythm(rhythm, seed) if options.repetition > 0 else None
        return HarmonyPlan.for_rhythm(rhythm, genre, seed, options.key, options.mode, form)

    def programs(self, options):
        """The General MIDI program of each group (music/orchestration.py): drawn from the
        genre's songs with the seed, the options' own choices winning."""
        from .music.orchestration import choose_programs

        genre, _, _ = self.resolve(options)
        return choose_programs(genre, options.seed % 2**64, options.programs)

    def render(self, midi, rhythm, options=None, soundfont=None):
        """The music as float32 ``[n, 2]`` at ``SAMPLE_RATE``, exactly as long as the video,
        mastered to ``options.loudness``."""
        from .audio.render import render_audio

        options = options or ScoreOptions()
        return render_audio(midi, SAMPLE_RATE, soundfont=soundfont, duration_s=rhythm.duration_s,
                            loudness=options.loudness)

    def report(self, midi, rhythm, tokens, options, structure=False, audio=None, **facts):
        """The report of a scored video: its facts and options, control error, rhythm
        alignment, the cheap MusDr metrics (``structure=True`` adds the slow structureness
        indicator), the harmony plan and the music's quality statistics (docs/MUSIC.md).
        ``audio``: the music as an array (measured here), or its measurement as a dict
        (``loudness_lufs``, ``true_peak_dbtp``, ``clipped_samples``: ``score`` passes what the
        mastering's final pass measured, and nothing measures the audio twice)."""
        from .metrics.quality import audio_quality, midi_quality

        genre, _, instruments = self.resolve(options)
        options = options.replace(genre=genre, instruments=instruments)   # as used
        plan = self.harmony_plan(rhythm, options)
        quality = midi_quality(midi, rhythm.duration_s, (plan.tonic, plan.mode))
        if isinstance(audio, dict):    # measured already (the mastering's final pass)
            quality.update(audio)
        elif audio is not None:
            quality.update(audio_quality(audio, SAMPLE_RATE))
        return score_report(midi, rhythm, tokens, structure=structure, **facts, genre=genre,
                            instruments=list(instruments), control=options.control,
                            seed=options.seed, options=options.to_dict(), model=str(self.path),
                            harmony=plan.to_dict(), programs=_programs_played(midi),
                            quality=_json_numbers(quality))


def _cpu_s():
    """CPU seconds of this process (all threads) and of its finished children (ffmpeg)."""
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + child.ru_utime + child.ru_stime


class _Stages(list):
    """The run's stages for the report's timings: each one's wall start and end (epoch
    seconds, so that a benchmark can lay a CPU sampler's readings over them) and the CPU
    seconds this process (all its threads) and its waited-for children (ffmpeg) spent in its
    interval; intervals follow each other, side jobs' CPU counts where it was spent."""

    def __init__(self):
        super().__init__()
        self.cpu = _cpu_s()

    def add(self, name, t0, t1=None, cpu=None):
        t1 = time.perf_counter() if t1 is None else t1
        now, wall = time.time(), time.perf_counter()
        cpu = _cpu_s() if cpu is None else cpu
        self.append({"name": name, "start": round(now - (wall - t0), 3),
                     "end": round(now - (wall - t1), 3), "wall_s": round(t1 - t0, 3),
                     "cpu_s": round(cpu - self.cpu, 3)})
        self.cpu = cpu


def _programs_played(midi):
    """``{group: {"program", "name"}}`` of the tracks that play notes."""
    from .music.instruments import track_group
    from .music.orchestration import program_name

    return {track_group(i): {"program": i.program,
                             "name": program_name(track_group(i), i.program)}
            for i in midi.instruments if i.notes and track_group(i)}


def _json_numbers(values):
    """numpy scalars → Python numbers, NaN → None (JSON has no NaN)."""
    out = {}
    for k, v in values.items():
        if isinstance(v, (np.floating, float)):
            v = None if v != v else round(float(v), 6)
        elif isinstance(v, np.integer):
            v = int(v)
        out[k] = v
    return out


def clip_midi(midi, duration_s, tempo_bpm):
    """Cut the music at the video's end: the last bar may run past it (bars tile by ceil)."""
    limit = int(duration_s * tempo_bpm / 60 * midi.ticks_per_beat)  # floor: never past the end
    for inst in midi.instruments:
        inst.notes = [n for n in inst.notes if n.start < limit]
        for n in inst.notes:
            n.end = min(n.end, limit)
    midi.max_tick = min(midi.max_tick, limit)
    return midi


def score_report(midi, rhythm, tokens, structure=False, **facts):
    """Facts, control error, rhythm alignment and MusDr metrics of a generated piece."""
    from .metrics.control import evaluate

    beats = [(b.tick, b.strength) for b in rhythm.visual_beats]
    # A last bar cut short by the video's end is left out of the density error: most of its
    # notes were never played. (Clips shorter than one bar keep their one bar.)
    full_bars = max(1, int(rhythm.duration_s * rhythm.tempo_bpm / 240 + 1e-6))
    densities = [b.density for b in rhythm.bars[:full_bars]]
    m = evaluate(midi, densities, beats, rhythm.cuts, rhythm.duration_s, rhythm.tempo_bpm,
                         structure)
    clean = {k: (None if v != v else round(float(v), 6)) for k, v in m.items()}  # nan → null
    bar_s = 240.0 / rhythm.tempo_bpm
    return {
        "duration_s": rhythm.duration_s, "tempo_bpm": rhythm.tempo_bpm, "n_bars": rhythm.n_bars,
        # Where an editor cuts to the music, and the edit points the music took as cuts.
        "bar_times_s": [round(k * bar_s, 6) for k in range(rhythm.n_bars)
                        if k * bar_s < rhythm.duration_s - 1e-9],
        "cuts_s": [round(t, 6) for t in rhythm.cuts],
        **facts, "n_tokens": int(len(tokens)),
        "control_error": {k: clean[f"{k}_error"] for k in ("density", "strength", "time")},
        "metrics": clean,
    }


def bar_chords(report):
    """The chord names of each bar of a scored piece's report (those that start in it, else
    the one still sounding), for markers an editor cuts to."""
    changes = report["harmony"]["chords"]
    names, current, i = [], [], 0
    for k in range(len(report["bar_times_s"])):
        here = []
        while i < len(changes) and changes[i]["bar"] < k + 1:
            here.append(changes[i]["name"])
            i += 1
        current = here or current[-1:]
        names.append(list(current))
    return names
