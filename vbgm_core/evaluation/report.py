"""The evaluation's report: the CMT paper's numbers, summaries over runs, the report folder
(report.json, report.md laid out like the paper's Tables 1 and 4, plots, MIDI, rhythms)."""

import json
import math

import numpy as np

from ..figures import save_figure

MUSDR = ("pitch_entropy", "groove_similarity", "structureness")
CONTROL_ERRORS = ("density_error", "strength_error", "time_error")
ALIGNMENT = ("onset_precision", "onset_recall", "onset_f1", "beat_align", "length_error_s")

# The CMT paper's numbers (METHOD.md §5): Table 1 (MusDr) and Table 4 (control error).
PAPER = {
    "table1": {
        "training data (LPD)": {"pitch_entropy": 4.452, "groove_similarity": 0.968,
                                "structureness": 0.488},
        "CMT with video control": {"pitch_entropy": 4.113, "groove_similarity": 0.599,
                                   "structureness": 0.200},
        "CMT without control": {"pitch_entropy": 3.617, "groove_similarity": 0.810,
                                "structureness": 0.241},
    },
    "table4": {"CMT": {"density_error": 0.107, "strength_error": 0.001, "time_error": 0.028}},
}
# Our row beside each of the paper's Table 1 rows (Table 4's one row is beside C=0.7).
PAPER_ROW = {"reference": "training data (LPD)", "C=0.7": "CMT with video control",
             "unconditioned": "CMT without control"}


def json_number(value):
    """A metric as report.json holds it: rounded to 6 digits; NaN and infinity as None (JSON
    has neither)."""
    return None if value is None or value != value or math.isinf(value) else round(float(value), 6)


# ---------------------------------------------------------------- report.json


def summarise(runs, metric_names):
    """Mean, standard deviation and count of each metric over runs (None values left out)."""
    out = {"n": len(runs), "mean": {}, "std": {}}
    for name in metric_names:
        values = [r[name] for r in runs if r.get(name) is not None]
        out["mean"][name] = json_number(np.mean(values)) if values else None
        out["std"][name] = json_number(np.std(values)) if values else None
    return out


def make_report(settings, videos, runs, reference):
    """The report (report.json's content) from the measured runs.

    Args:
        settings: the run's settings (``controls``, ``data`` and ``reference_split`` are read).
        videos: one dict per video (name, path, duration, tempo, bars, beats, cuts).
        runs: one dict per measured piece (``condition`` and the metrics).
        reference: the held-out songs' metrics, or None without a dataset.

    Returns:
        The dict, ``seconds`` still None (the caller times the whole run).
    """
    with_data = settings["data"] is not None
    conditions = [f"C={c:g}" for c in settings["controls"]] + ["unconditioned"]
    conditions += ["matched"] if with_data else []
    summary = {c: summarise([r for r in runs if r["condition"] == c],
                            MUSDR + CONTROL_ERRORS + ALIGNMENT)
               for c in conditions}
    if reference is not None:
        summary["reference"] = summarise(reference, MUSDR)
    return {"settings": settings, "videos": videos, "summary": summary, "runs": runs,
            "reference": reference, "paper": PAPER,
            "notes": _notes(with_data, settings["reference_split"]), "seconds": None}


def _notes(with_data, reference_split):
    notes = [
        "The unconditioned baseline (no video controls, no beat-timing encoding) generates "
        "exactly the video's number of bars, as every vbgm piece does; the paper's unconditioned "
        "model ran free until EOS, so its length and time error are not comparable.",
        "SI (structureness) is computed from a symbolic chroma of the MIDI (MusDr runs it on "
        "audio), so it is not comparable in kind with the paper's SI; H uses 4-bar windows and "
        "GS all bar pairs with drums on the 16th grid (settings in vbgm_core/metrics/); the "
        "paper does not state its settings. SI looks for repeated 3-8 s segments, so it is near "
        "0 for pieces under ~20 s; use clips of a minute or more for Table 1.",
        "The paper's objective numbers are placed beside the analogous rows: its "
        "'CMT with video control' beside C=0.7 (its chosen C; the paper does not state the C "
        "of Table 1), its Table 4 control error beside C=0.7 likewise.",
    ]
    if not with_data:
        notes.append("No --data given: the matched baseline and the reference row were skipped.")
    elif reference_split != "test":
        notes.append(f"The dataset has no test-split songs: the reference row uses the "
                     f"{reference_split} split, which is not held out.")
    return notes


# ---------------------------------------------------------------- the report folder


def write_pieces(folder, report, names, rhythms, pieces):
    """MIDI of every piece, rhythm JSON and a score plot per video, the metric-vs-C plot.

    Args:
        pieces: ``{(video name, condition, seed): MIDI}``.
    """
    from ..plot import plot_score

    (folder / "plots").mkdir()
    (folder / "rhythm").mkdir()
    controls = report["settings"]["controls"]
    shown = min(controls, key=lambda c: abs(c - 0.7))  # the score plot shows C closest to 0.7
    for name, rhythm in zip(names, rhythms):
        rhythm.to_json(folder / "rhythm" / f"{name}.json")
        (folder / "midi" / name).mkdir(parents=True)
        for (video, condition, seed), midi in pieces.items():
            if video == name:
                suffix = f"_seed{seed}" if seed is not None else ""
                midi.dump(str(folder / "midi" / name / f"{condition}{suffix}.mid"))
        plot_score(rhythm, pieces[name, f"C={shown:g}", 0], folder / "plots" / f"{name}.png")
    plot_metrics_vs_control(report, folder / "plots" / "metrics_vs_control.png")


def write_report(folder, report):
    """report.json and report.md."""
    (folder / "report.json").write_text(json.dumps(report, indent=1))
    (folder / "report.md").write_text(report_markdown(report))


def plot_metrics_vs_control(report, path):
    """Each metric's mean (± std over videos and seeds) against C; the baselines and the
    reference as horizontal lines, the paper's numbers as crosses at C=0.7."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary, controls = report["summary"], report["settings"]["controls"]
    shown = MUSDR + CONTROL_ERRORS + ("onset_f1", "beat_align")
    fig, axes = plt.subplots(3, 3, figsize=(13, 10))  # 8 metrics + the legend
    lines = {"unconditioned": ("tab:gray", "--"), "matched": ("tab:green", ":"),
             "reference": ("tab:purple", "-.")}
    for ax, metric in zip(axes.flat, shown):
        mean = [summary[f"C={c:g}"]["mean"][metric] for c in controls]
        std = [summary[f"C={c:g}"]["std"][metric] for c in controls]
        ok = [i for i, m in enumerate(mean) if m is not None]
        ax.errorbar([controls[i] for i in ok], [mean[i] for i in ok], [std[i] for i in ok],
                    marker="o", capsize=3, label="CMT (ours)")
        for row, (colour, style) in lines.items():
            value = summary.get(row, {}).get("mean", {}).get(metric)
            if value is not None:
                ax.axhline(value, color=colour, ls=style, label=row)
        paper = {**PAPER["table1"]["CMT with video control"], **PAPER["table4"]["CMT"]}
        if metric in paper:
            ax.plot([0.7], [paper[metric]], "rx", ms=9, label="paper (CMT)")
        ax.set_title(metric, fontsize=10)
        ax.set_xlabel("control degree C")
    axes.flat[-1].axis("off")
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    axes.flat[-1].legend(list(handles.values()), list(handles), loc="center")
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


# ---------------------------------------------------------------- report.md


def _cell(summary, row, metric, digits=3):
    s = summary.get(row)
    if s is None or s["mean"].get(metric) is None:
        return "–"
    mean, std = s["mean"][metric], s["std"][metric]
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if s["n"] > 1 else f"{mean:.{digits}f}"


def _paper_cell(table, row, metric):
    """The paper's number beside our analogous row (PAPER_ROW; Table 4 beside C=0.7)."""
    if table == "table1":
        values = PAPER["table1"].get(PAPER_ROW.get(row), {})
    else:
        values = PAPER["table4"]["CMT"] if row == "C=0.7" else {}
    return f"{values[metric]:.3f}" if metric in values else "–"


def _label(row, settings):
    if row == "reference":
        return f"held-out songs ({settings['reference_split']} split)"
    return row


def report_markdown(report):
    """report.md: settings, the paper's Tables 1 and 4 with our numbers, rhythm alignment, the
    videos and their matched songs, notes."""
    settings, summary = report["settings"], report["summary"]
    rows = [r for r in ("reference",) if r in summary] + [r for r in summary if r != "reference"]
    out = ["# vbgm eval report", "",
           f"Model: `{settings['model']}`; genre {settings['genre']}; instruments "
           f"{', '.join(settings['instruments'])}; C ∈ {{{', '.join(f'{c:g}' for c in settings['controls'])}}}; "
           f"{settings['seeds']} seed(s); {len(report['videos'])} video(s), "
           f"{sum(v['duration_s'] for v in report['videos']):.1f} s in all; data "
           f"`{settings['data']}`" + (" (quick)" if settings["quick"] else "") + ".",
           "Values are mean ± standard deviation over videos × seeds (the reference row: over "
           "songs). `–`: not measured, or no paper counterpart.", "",
           "## Table 1: objective metrics (MusDr)", "",
           "| | H ↑ | GS ↑ | SI ↑ | n | paper H | paper GS | paper SI |",
           "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ours = [_cell(summary, row, m) for m in MUSDR]
        paper = [_paper_cell("table1", row, m) for m in MUSDR]
        out.append(f"| {_label(row, settings)} | {' | '.join(ours)} | {summary[row]['n']} | "
                   f"{' | '.join(paper)} |")
    out += ["", "Paper rows: training data (LPD) ↔ held-out songs; CMT with video control ↔ "
            "C=0.7; CMT without control ↔ unconditioned.", "",
            "## Table 4: control error (normalised L2, lower is better)", "",
            "| | density | strength | time | paper density | paper strength | paper time |",
            "|---|---|---|---|---|---|---|"]
    for row in (r for r in rows if r != "reference"):
        ours = [_cell(summary, row, m) for m in CONTROL_ERRORS]
        paper = [_paper_cell("table4", row, m) for m in CONTROL_ERRORS]
        out.append(f"| {row} | {' | '.join(ours)} | {' | '.join(paper)} |")
    out += ["", "## Rhythm alignment with the video (no paper counterpart)", "",
            "| | onset P | onset R | onset F1 | BeatAlign | length error (s) |",
            "|---|---|---|---|---|---|"]
    for row in (r for r in rows if r != "reference"):
        out.append(f"| {row} | {' | '.join(_cell(summary, row, m) for m in ALIGNMENT)} |")
    out += ["", "## Videos", "",
            "| video | duration (s) | tempo (BPM) | bars | visual beats | cuts | matched song "
            "(bar offset, MS) |", "|---|---|---|---|---|---|---|"]
    matched = {r["video"]: r for r in report["runs"] if r["condition"] == "matched"}
    for v in report["videos"]:
        m = matched.get(v["name"])
        match = (f"{m['match_song']} ({m['match_offset_bars']}, {m['matching_score']:.3g})"
                 if m else "–")
        out.append(f"| {v['name']} | {v['duration_s']:.2f} | {v['tempo_bpm']:g} | {v['n_bars']} "
                   f"| {v['visual_beats']} | {v['cuts']} | {match} |")
    out += ["", "Plots: `plots/metrics_vs_control.png` (metrics against C with the baselines), "
            "`plots/<video>.png` (the video's rhythm above the music at the C closest to 0.7). "
            "Every piece is in `midi/<video>/`, every analysed rhythm in `rhythm/`; "
            "`report.json` has each run.", "", "## Notes", ""]
    out += [f"- {n}" for n in report["notes"]]
    out += ["", f"Run time: {report['seconds']} s." if report["seconds"] is not None else ""]
    return "\n".join(out) + "\n"
