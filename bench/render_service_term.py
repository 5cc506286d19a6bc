"""The service-term section of ``docs/benchmarks.md`` (``bench.service_term``), from the JSON only."""

from __future__ import annotations

from bench.render_common import JsonDict, pct, span_label, table

RUNS = {"learning": "learning on (defaults)", "no_learning": "learning off"}


def outcome(counts: JsonDict) -> str:
    """named right (rate) · missed · wrong · strangers accepted."""
    return (
        f"{counts['named_right']} ({pct(counts['named_right_rate'])}) · {counts['missed']} · "
        f"{counts['wrong']} · {counts['strangers_accepted']}"
    )


def not_in_effect(counts: JsonDict) -> str:
    return (
        f"{counts['assignments_not_in_effect']} · {counts['photo_faces_wrong_after']} · "
        f"{counts['roster_wrong_after']}"
    )


def render_service_term(res: JsonDict) -> list[str]:
    proto = res["protocol"]
    runs = {name: res["runs"][name] for name in RUNS if name in res["runs"]}
    lines = [
        f"The idea of section 7 through the real service: `app.main.create_app` with the default "
        f"pipeline ({' + '.join(proto['models'])}, {proto['n_views']} views per registration "
        "photo), in-process behind FastAPI's `TestClient`, on a fresh folder store per run. One "
        f"class of {proto['class_size']} {proto['dataset']} identities with at least "
        f"{proto['min_photos']} photos (seed {proto['seed']}), each enrolled with `POST /students` "
        f"from their first photo, or the next one if the service refuses it ({res['students_enrolled']} "
        f"enrolled, {res['enrolled_from_a_later_photo']} from a later photo, in "
        f"{res['enrol_seconds']:.0f} s; once, each run starts on a copy of that store). Week *w* is one class "
        f"photo uploaded to a new session: every student's next unseen photo and "
        f"{proto['strangers_per_session']} strangers (LFW identities with 1-2 photos, new every "
        f"week) as {proto['tile_px']} px tiles on a grid of {proto['grid_columns']} columns "
        f"(JPEG quality {proto['jpeg_quality']}); a detected face belongs to the tile its box "
        "centre lies in (the one nearest the tile's centre; any other is a background face of the "
        "LFW photo). Then the teacher corrects the photo with `POST .../faces/{i}/assign`: every "
        "missed or wrongly named student to the right student, every named stranger or "
        "background face to nobody. With learning on, named faces become samples (auto-confirm "
        f"at {proto['auto_confirm_margin']} over the threshold and {proto['auto_confirm_gap']} "
        f"over the runner-up; at most {proto['max_samples_per_student']} per student), and so do "
        "the faces the teacher names; with `learn_from_photos=False` neither.",
        "",
        "Each cell: named right (of the students' faces detected) · missed · wrong names · "
        "strangers accepted.",
        "",
    ]
    first = next(iter(runs.values()))
    header = ["week", "students shown", "strangers"]
    for name in runs:
        header += [RUNS[name], "samples"]
    rows = []
    for index, week in enumerate(first["weeks"]):
        cells: list[object] = [
            week["week"],
            week["student_tiles"] - week["not_detected"],
            week["stranger_tiles"],
        ]
        for run in runs.values():
            this = run["weeks"][index]
            cells += [outcome(this), this["samples"]]
        rows.append(cells)
    lines += table(header, rows, "r" * len(header))
    spans = [span_label(s["weeks"]) for s in first["totals"]]
    total_rows = []
    for name, run in runs.items():
        total_rows.append(
            [
                RUNS[name],
                *(outcome(span) for span in run["totals"]),
                f"{run['samples_at_end']} ({run['wrong_samples_at_end']})",
                run["assignments"],
                not_in_effect(run["totals"][0]),
                f"{run['upload_ms_median']:.0f}",
                f"{run['assign_ms_median']:.0f}" if run["assign_ms_median"] is not None else "-",
                f"{run['seconds']:.0f}",
                f"{run['load_average_before']} → {run['load_average_after']}",
                f"{100 * run['cpu_used_by_other_processes']:.0f} %",
            ]
        )
    lines += table(
        [
            "run",
            *spans,
            "samples at the end (of a wrong face)",
            "assignments",
            "corrections not in effect (reply · photo · roster)",
            "upload ms (median)",
            "assign ms (median)",
            "seconds",
            "load avg before → after",
            "CPU used by other processes",
        ],
        total_rows,
        "l" + "r" * (len(spans) + 8),
    )
    background = sum(w["background_faces"] for w in first["weeks"])
    background_named = sum(w["background_named"] for w in first["weeks"])
    missing = sum(w["not_detected"] for w in first["weeks"])
    lines += [
        f"Students' faces not detected: {missing} over the term (not counted above). Background "
        f"faces found in the LFW photos: {background}, {background_named} of them named by "
        "recognition (learning on; cleared by the teacher). *Corrections not in effect* counts "
        "assigned faces whose reply did not carry the name assigned, faces of the photo read "
        "back afterwards that are not named as the teacher said, and students whose presence in "
        "the session's roster is not the truth after the corrections; all three should be 0. "
        "Latencies are measured by the client around each in-process request (no network); the "
        "head trainer runs in the background between assignments.",
        "",
    ]
    return lines
