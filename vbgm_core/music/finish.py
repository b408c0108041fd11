"""From decoded, clipped MIDI to the performance that is rendered: the one call after
``CPTokenizer.decode`` + ``api.clip_midi`` (issue 15; docs/MUSIC.md)."""

from .articulation import close_on_tonic, fill_silences, ring_out
from .dynamics import apply_velocities


def finish(midi, rhythm, plan=None, seed=0):
    """In place: the plan's key and chords as MIDI meta events, silences longer than a second
    bridged by held notes, the last chord (the tonic, with a plan) ringing to the video's last
    frame and, with a plan, made the tonic triad with its root (``close_on_tonic``), and
    velocities from the music and the picture.

    Args:
        midi: miditoolkit.MidiFile from ``CPTokenizer.decode``, cut at the video's end.
        rhythm: the VideoRhythm it was generated for.
        plan: the sampler's ``HarmonyPlan`` (``ControlledSampler.plan``), or None.
        seed: the piece's seed (velocity humanisation).

    Returns:
        the MidiFile.
    """
    if plan is not None:
        plan.annotate(midi)
    fill_silences(midi)
    ring_out(midi, rhythm.duration_s, *((plan.tonic, plan.mode) if plan is not None else ()))
    if plan is not None:
        close_on_tonic(midi, plan.tonic, plan.mode)
    return apply_velocities(midi, rhythm, seed)
