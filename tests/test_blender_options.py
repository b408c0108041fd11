"""One place for defaults (issue 22): the panel's fields against the core's ScoreOptions.

The core describes every option (``vbgm_core.options.option_specs()``: default, choices, range,
CLI flag); this checks the panel (real bpy) against it, so that a default or range changed in
the core, or a new option, cannot leave Blender behind unnoticed. .venv-blender cannot import
the core (bpy pins numpy<2), so the specs are read in the core's Python (`vbgm`'s interpreter).
"""

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import vbgm_command

bpy = pytest.importorskip("bpy", reason="bpy not installed: run with .venv-blender (scripts/setup_blender_venv.sh)")

# Core option -> the panel property that sets it. Tempo is two: Auto/BPM and the BPM.
SHOWN = {"genre": "genre", "instruments": "instruments", "control": "control",
         "tempo": "tempo_bpm", "seed": "seed", "key": "key", "mode": "mode",
         "min_density": "min_density", "repetition": "repetition", "loudness": "loudness",
         "mix": "mix",
         "music_gain_db": "music_gain_db", "original_gain_db": "original_gain_db",
         "duck_depth_db": "duck_depth_db", "duck_attack_s": "duck_attack_s",
         "duck_release_s": "duck_release_s"}
# Left out of the panel on purpose (the CLI has them).
OMITTED = {
    "sampling": "per-attribute temperatures and top-p (and genre guidance) are for studying the "
                "model, not for editing a film: a dozen numbers whose effect an editor cannot "
                "judge; Seed and Control are the panel's ways to get other music",
    "programs": "General MIDI program numbers per instrument: the Genre already draws its "
                "songs' instruments (another Seed, other instruments); a sound-preset menu is "
                "the panel's next step, the CLI and Python have the option now",
}
# Where the panel's default is not the core's, and why.
OWN_DEFAULTS = {
    # The panel starts at Mix; the core's default (for a video file) replaces its audio.
    "mix": ("MIX", ("an editor adds music under the edit's own sound (dialogue, effects); "
                    "replacing it is the exception")),
    # The BPM field only shows with Tempo = BPM; the default is Auto (tempo_mode), the core's.
    "tempo": (120.0, "the BPM offered when switching Tempo to BPM; the default tempo is Auto"),
}
# Options the job does not pass to `vbgm score`: Blender applies them to strips itself (the
# WAV is the music at 0 dB; the original sound is the movies' own strips).
NOT_PASSED = {"music_gain_db", "original_gain_db"}


@pytest.fixture(scope="module")
def specs():
    python = Path(vbgm_command()).parent / "python"
    code = "import json\nfrom vbgm_core.options import option_specs\nprint(json.dumps(option_specs()))"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=300,
                          check=False)
    last = (done.stderr.strip().splitlines() or [""])[-1]
    assert done.returncode == 0, f"the core's vbgm_core.options.option_specs() (issue 22) failed: {last}"
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def addon(registered_addon):
    return registered_addon


@pytest.fixture
def settings(addon):
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.vbgm.refresh_choices()  # the model's genres and instruments
    return bpy.context.scene.vbgm


def rna(name):
    from blender_vse import properties

    return properties.VBGM_PG_settings.bl_rna.properties[name]


def test_every_core_option_is_on_the_panel_or_left_out_on_purpose(specs, settings):
    assert set(specs) == set(SHOWN) | set(OMITTED), \
        "an option of the core is neither on the panel (SHOWN) nor left out on purpose (OMITTED)"
    from blender_vse import properties

    for option, prop in SHOWN.items():
        assert prop in properties.VBGM_PG_settings.bl_rna.properties, (option, prop)


def test_numbers_have_the_cores_defaults_and_stay_in_its_range(specs, settings):
    numbers = [o for o, p in SHOWN.items() if rna(p).type in ("FLOAT", "INT")]
    assert set(numbers) == {"control", "tempo", "seed", "min_density", "repetition", "loudness",
                            "music_gain_db",
                            "original_gain_db", "duck_depth_db", "duck_attack_s", "duck_release_s"}
    for option in numbers:
        spec, prop = specs[option], rna(SHOWN[option])
        if option in OWN_DEFAULTS:
            assert prop.default == pytest.approx(OWN_DEFAULTS[option][0]), option
        else:
            assert prop.default == pytest.approx(spec["default"], abs=1e-6), option
        # Whatever the user can type (the hard range; the slider's soft one lies within it)
        # must be a value the core accepts.
        for low, high in ((prop.hard_min, prop.hard_max), (prop.soft_min, prop.soft_max)):
            assert spec["min"] is None or low >= spec["min"] - 1e-6, (option, low, spec["min"])
            assert spec["max"] is None or high <= spec["max"] + 1e-6, (option, high, spec["max"])
    # Tempo: Auto by default, as the core (None = from the video).
    assert specs["tempo"]["default"] is None and rna("tempo_mode").default == "AUTO"


def test_choices_are_the_cores(specs, settings, addon):
    for option in ("key", "mode"):
        spec, prop = specs[option], rna(option)
        assert spec["choices"], f"the core lists no choices for {option}"
        assert [i.identifier for i in prop.enum_items] == spec["choices"], option
        assert prop.default == spec["default"], option
    mix = [i.identifier.lower() for i in rna("mix").enum_items]
    assert mix == specs["mix"]["choices"]  # REPLACE, MIX, DUCK: the core's modes
    assert rna("mix").default == OWN_DEFAULTS["mix"][0] and specs["mix"]["default"] == "replace"
    # Genre and instruments are the model's (read from `vbgm genres` / `vbgm instruments`);
    # a new scene chooses neither, so the core's defaults hold (None: the model's default genre,
    # every instrument), also once the model's genres have loaded (not its first genre).
    assert addon.properties._choices["genres"], "the model's genres did not load"
    asked = addon.properties.take_options(settings)
    assert specs["genre"]["default"] is None and settings.genre == "DEFAULT" and asked["genre"] is None
    assert specs["instruments"]["default"] is None and settings.instruments == set() \
        and not asked["instruments"]
    names = [item[0] for item in addon.properties._choices["instruments"]]
    assert names and (specs["instruments"]["choices"] is None
                      or set(names) <= set(specs["instruments"]["choices"]))


def test_the_job_passes_each_option_with_the_cores_flag(specs, settings, addon):
    """What the panel sets reaches `vbgm score` under the flag the core names."""
    settings.mix, settings.tempo_mode = "DUCK", "BPM"
    settings.instruments = {addon.properties._choices["instruments"][0][0]}
    settings.genre = addon.properties._choices["genres"][0][0]
    options = addon.properties.take_options(settings)
    options.pop("music_gain_db")  # as the operator does: the strip's volume, not the CLI's
    argv = addon.job.score_command("vbgm", "e.json", "m.wav", "m.mid", seed=settings.seed, **options)
    for option in set(SHOWN) - NOT_PASSED:
        assert specs[option]["flag"] in argv, (option, specs[option]["flag"])
    assert argv[argv.index(specs["mix"]["flag"]) + 1] == "duck"
    for option in NOT_PASSED:
        assert specs[option]["flag"] not in argv, option


class DrawnProps:
    """Stands in for the panel's UILayout (bpy draws no UI without a window): records the
    properties and operators ``draw`` asks to show. The panel reads the real scene."""

    def __init__(self, shown=None):
        self.shown = [] if shown is None else shown

    def prop(self, data, name, **kwargs):
        self.shown.append(name)

    def operator(self, idname, **kwargs):
        self.shown.append(idname)

    def _nested(self, *args, **kwargs):
        return DrawnProps(self.shown)

    row = column = box = _nested

    def label(self, *args, **kwargs):
        pass

    progress = label


def test_the_panel_shows_every_option_it_has(settings):
    from blender_vse import ui

    settings.mix, settings.originals, settings.tempo_mode = "DUCK", "LOWER", "BPM"
    panel = SimpleNamespace(layout=DrawnProps(), _draw_source=lambda context, box: None)
    ui.VBGM_PT_score.draw(panel, SimpleNamespace(scene=bpy.context.scene,
                                                 window_manager=bpy.context.window_manager))
    missing = set(SHOWN.values()) - set(panel.layout.shown)
    assert not missing, f"on the settings but not drawn: {sorted(missing)}"
    assert {"vbgm.generate_score", "vbgm.reroll_score", "vbgm.add_bar_markers"} <= set(panel.layout.shown)
