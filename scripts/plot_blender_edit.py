"""docs/blender_edit.png: a Blender timeline scored whole, with the ducked score strip's volume
keyframes, read back from the saved .blend.

    .venv-blender/bin/python scripts/plot_blender_edit.py OUT_DIR   # needs ../shared/videos

Two halves in two environments: with bpy (.venv-blender) it builds the timeline with the
add-on's data-API path (edit list, score WAV from the real `vbgm score`, gain curve from the
core's speech detection, keyframes), saves and reopens the .blend and dumps what it reads;
then it runs itself with the core's Python (matplotlib) to draw that dump.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VBGM = Path(os.environ.get("VBGM_EXECUTABLE") or REPO / ".venv" / "bin" / "vbgm")
OUT = REPO / "docs" / "blender_edit.png"
FPS = 30


def build(folder):
    """The test timeline (tests/test_blender_edit.py), scored and ducked; returns the dump."""
    import bpy

    sys.path.insert(0, str(REPO / "plugins"))
    from blender_vse import edit_list, strips

    talking = REPO.parent / "shared" / "videos" / "talking.mp4"
    test25, bunny30 = folder / "test25.mp4", folder / "bunny30.mp4"
    for args in (["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "3", test25],
                 ["-i", REPO / "examples" / "media" / "bigbuckbunny.mp4", "-r", "30", "-an", bunny30]):
        subprocess.run(["ffmpeg", "-v", "error", "-y", *map(str, args)], check=True)
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(folder / "edit.blend"))
    sc = bpy.context.scene
    sc.render.fps, sc.frame_start, sc.frame_end = FPS, 1, 360
    seq = sc.sequence_editor_create().strips
    talk = seq.new_movie("talking", str(talking), 2, 1)
    talk.frame_offset_start, talk.frame_offset_end = 30, talk.frame_duration - 180
    sound = seq.new_sound("talking sound", str(talking), 1, 1)
    sound.frame_offset_start, sound.frame_offset_end = 30, sound.frame_duration - 180
    seq.new_movie("test25", str(test25), 2, 181)
    meta = seq.new_meta("meta", 3, 241)
    meta.strips.new_movie("bunny30", str(bunny30), 1, 241)
    meta.frame_final_end, meta.frame_final_start = 331, 271
    plan = edit_list.build(sc, "SCENE")
    edit, wav = plan.write(folder / "edit.json"), folder / "score.wav"
    subprocess.run([str(VBGM), "score", str(edit), "--wav", str(wav), "--midi", str(folder / "s.mid"),
                    "--seed", "1", "--progress", "none"], check=True)
    code = ("import json, sys\nfrom vbgm_core.audio.mix import plan_mix\n"
            "from vbgm_core.audio.speech import edit_speech\n"
            "from vbgm_core.options import ScoreOptions\nfrom vbgm_core.video.edit import EditList\n"
            "e = EditList.from_json(sys.argv[1])\n"
            "m = plan_mix(ScoreOptions(mix='duck'), e.duration_s, lambda: edit_speech(e))\n"
            "print(json.dumps(m.music.breakpoints()))")
    points = json.loads(subprocess.run([str(VBGM.parent / "python"), "-c", code, str(edit)],
                                       check=True, capture_output=True, text=True).stdout)
    score = strips.add_score_strip(sc, plan, wav, "score take1")
    strips.set_music_level(sc, score, points, plan.fps)
    strips.set_original_level(sc, plan.sounds, "LOWER", -10.5)
    bpy.ops.wm.save_mainfile()
    bpy.ops.wm.open_mainfile(filepath=str(folder / "edit.blend"))  # what the file holds
    sc = bpy.context.scene
    rows = [{"name": s.name, "type": s.type, "channel": s.channel, "start": s.frame_final_start,
             "end": s.frame_final_end, "volume": getattr(s, "volume", None),
             "children": [c.name for c in getattr(s, "strips", ())]}
            for s in sc.sequence_editor.strips]
    keys = [list(k.co) for fc in strips._fcurves(sc) for k in fc.keyframe_points]
    return {"fps": FPS, "strips": rows, "keys": keys, "scene": [sc.frame_start, sc.frame_end]}


def draw(dump, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"MOVIE": "#4f6fa8", "META": "#8a6fb0", "SOUND": "#3f8f6b"}
    fig, ax = plt.subplots(figsize=(10, 3.6), dpi=120)
    for s in dump["strips"]:
        y = s["channel"]
        face = "#c58b2c" if s["name"].startswith("score") else colours.get(s["type"], "grey")
        ax.add_patch(plt.Rectangle((s["start"], y - 0.45), s["end"] - s["start"], 0.9, fc=face,
                                   ec="black", lw=0.6, alpha=0.9))
        label = s["name"] + (f" [{', '.join(s['children'])}]" if s["children"] else "")
        if s["volume"] is not None and not s["name"].startswith("score"):
            label += f"  (vol {s['volume']:.2f})"
        ax.text(s["start"] + 2, y, label, va="center", fontsize=8, color="white")
    score = next(s for s in dump["strips"] if s["name"].startswith("score"))
    keys = sorted(dump["keys"])
    y0 = score["channel"] - 0.45
    ax.plot([f for f, _ in keys], [y0 + 0.85 * v for _, v in keys], color="black", lw=1.4,
            marker="o", ms=3, label="score volume keyframes (0-1)")
    ax.axvspan(*dump["scene"], color="grey", alpha=0.08, lw=0)
    ax.set_xlim(dump["scene"][0] - 5, dump["scene"][1] + 5)
    ax.set_ylim(0.4, max(s["channel"] for s in dump["strips"]) + 0.6)
    ax.set_yticks(sorted({s["channel"] for s in dump["strips"]}))
    ax.set_ylabel("channel")
    ax.set_xlabel(f"frame ({dump['fps']} fps)")
    ax.set_title("Scene scored whole: one score strip, ducked under the narration", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    if sys.argv[1] == "--draw":
        draw(json.loads(Path(sys.argv[2]).read_text()), sys.argv[3])
    else:
        folder = Path(sys.argv[1]).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        dump = folder / "timeline.json"
        dump.write_text(json.dumps(build(folder)))
        subprocess.run([str(VBGM.parent / "python"), __file__, "--draw", str(dump), str(OUT)], check=True)
        print(f"wrote {OUT}")
