"""``docs/benchmarks.md`` from ``docs/benchmarks.json``: every figure in the document comes from the JSON.

The renderer only formats: it computes ratios and picks the better side of each comparison, and it
lists every comparison Rollcall loses, so a loss can never be left out of the text by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.render_common import (
    ALT,
    ALT_LABEL,
    OURS,
    PEER,
    JsonDict,
    dig,
    fmt,
    fmt_bytes,
    fmt_ratio,
    pct,
    results,
    span_label,
    system_label,
    table,
)
from bench.render_school import render_school
from bench.render_service_term import render_service_term
from bench.render_term import render_term

SECTION_TITLES = {
    "verification": "1. Verification: LFW View-2",
    "oneshot": "2. One-shot attendance on LFW (open set)",
    "school": "3. Strangers in a school: the threshold's margin, a simulated school, samples",
    "groups": "4. Group photos",
    "speed": "5. Speed on this machine",
    "scale": "6. Cost as the gallery grows",
    "term": "7. Learning from confirmed faces: a simulated term",
    "service-term": "8. Corrections and learning through the service: a simulated term",
}


@dataclass(frozen=True)
class Comparison:
    section: str
    what: str
    ours: float
    peer: float
    higher_is_better: bool
    unit: str
    """``%`` (rates stored as fractions), ``ms``, ``/s``, ``bytes``."""
    alternative: float | None = None
    """The same figure for Rollcall FaceNet alone (shown, never compared)."""

    @property
    def winner(self) -> str:
        if math.isclose(self.ours, self.peer, rel_tol=1e-9, abs_tol=1e-12):
            return "tie"
        ours_better = self.ours > self.peer if self.higher_is_better else self.ours < self.peer
        return OURS if ours_better else PEER

    @property
    def ratio(self) -> float | None:
        return self.ours / self.peer if self.peer else None


# -- comparisons ----------------------------------------------------------------------------------

RATE_DIRECTIONS = {
    "rank1": ("rank-1", True),
    "named_right": ("named right", True),
    "wrong_name": ("wrong name", False),
    "false_accept": ("strangers accepted", False),
}


def comparisons(data: JsonDict) -> list[Comparison]:
    found: list[Comparison] = []
    found += _verification_comparisons(results(data, "verification"))
    found += _oneshot_comparisons(results(data, "oneshot"))
    found += _school_comparisons(results(data, "school"))
    found += _groups_comparisons(results(data, "groups"))
    found += _speed_comparisons(results(data, "speed"))
    found += _scale_comparisons(results(data, "scale"))
    return found


def _verification_comparisons(res: JsonDict | None) -> list[Comparison]:
    if not res or PEER not in res["systems"]:
        return []
    ours, peer = res["systems"]["rollcall"], res["systems"][PEER]
    alt = res["systems"].get(ALT)
    out = []
    for policy in ("strict", "fallback"):
        out.append(
            Comparison(
                "verification",
                f"LFW accuracy, threshold from the other folds ({policy})",
                ours[policy]["accuracy"],
                peer[policy]["accuracy"],
                True,
                "%",
                dig(alt, policy, "accuracy"),
            )
        )
    out.append(
        Comparison(
            "verification",
            "LFW photos without a detected face",
            ours["photos_without_face"],
            peer["photos_without_face"],
            False,
            "",
            dig(alt, "photos_without_face"),
        )
    )
    return out


def _oneshot_comparisons(res: JsonDict | None) -> list[Comparison]:
    if not res or PEER not in res["systems"]:
        return []
    peer = res["systems"][PEER]["methods"]["nearest"]
    alt = res["systems"].get(ALT)
    out = []
    labels = {
        "stage1": "stage 1",
        "stage1_school": "stage 1 with the school",
        "two_stage": "two-stage",
    }
    for method, label in labels.items():
        if method not in res["systems"]["rollcall"]["methods"]:
            continue
        ours = res["systems"]["rollcall"]["methods"][method]
        for point, name in (("at_default", "default threshold"), ("at_calibrated", "1% FA")):
            for key, (what, higher) in RATE_DIRECTIONS.items():
                out.append(
                    Comparison(
                        "oneshot",
                        f"one-shot {what}, {name} (Rollcall {label})",
                        ours[point][key],
                        peer[point][key],
                        higher,
                        "%",
                        dig(alt, "methods", method, point, key),
                    )
                )
    peer_sizes = dig(res["systems"][PEER], "false_accept_by_class_size", "rows")
    for key, where in (
        ("false_accept_by_class_size", ""),
        ("false_accept_by_class_size_school", " in the school"),
    ):
        ours_sizes = dig(res["systems"]["rollcall"], key, "rows")
        if not ours_sizes or not peer_sizes:
            continue
        alt_sizes = {r["students"]: r for r in dig(alt, key, "rows") or []}
        peer_by_size = {r["students"]: r for r in peer_sizes}
        for row in ours_sizes:
            if row["students"] not in peer_by_size:
                continue
            out.append(
                Comparison(
                    "oneshot",
                    f"one-shot strangers accepted at the default threshold, class of "
                    f"{row['students']} students{where}",
                    row["false_accept"],
                    peer_by_size[row["students"]]["false_accept"],
                    False,
                    "%",
                    dig(alt_sizes.get(row["students"]), "false_accept"),
                )
            )
    return out


def _school_comparisons(res: JsonDict | None) -> list[Comparison]:
    """The simulated school, every class size together: Rollcall with its school cohort (the
    default where other classes exist) and each class alone, against face_recognition."""
    if not res or PEER not in res.get("school", {}).get("systems", {}):
        return []
    systems = res["school"]["systems"]
    peer = systems[PEER]["rows"][-1]
    alone = systems.get("alone", {}).get("rows", [{}])[-1]
    out = []
    for key, what, higher in (
        ("named_right", "named right", True),
        ("wrong_name", "wrong names", False),
        ("outside_accepted", "strangers from outside accepted", False),
        ("inside_accepted", "strangers from other classes accepted", False),
    ):
        ours = systems["school"]["rows"][-1]
        out.append(
            Comparison(
                "school",
                f"simulated school (classes of 5-40), {what} (Rollcall with the school cohort)",
                ours[key],
                peer[key],
                higher,
                "%",
            )
        )
        out.append(
            Comparison(
                "school",
                f"simulated school (classes of 5-40), {what} (Rollcall, each class alone)",
                alone.get(key, 0.0),
                peer[key],
                higher,
                "%",
            )
        )
    return out


def _groups_comparisons(res: JsonDict | None) -> list[Comparison]:
    if not res:
        return []
    out = []
    detection = res["detection"]
    if "dlib_hog" in detection:
        for key in ("precision", "recall"):
            out.append(
                Comparison(
                    "groups",
                    f"group-photo detection {key} (MTCNN vs dlib HOG)",
                    detection["mtcnn"]["totals"][key],
                    detection["dlib_hog"]["totals"][key],
                    True,
                    "%",
                )
            )
    systems = res["attendance"]["systems"]
    if PEER in systems:
        peer = systems[PEER]["methods"]["nearest"]["totals"]
        for method in ("stage1", "two_stage"):
            ours = systems["rollcall"]["methods"][method]["totals"]
            alt = dig(systems.get(ALT), "methods", method, "totals")
            label = "stage 1" if method == "stage1" else "two-stage"
            for key in ("precision", "recall"):
                if ours[key] is None or peer[key] is None:
                    continue
                out.append(
                    Comparison(
                        "groups",
                        f"group-photo attendance {key} (Rollcall {label})",
                        ours[key],
                        peer[key],
                        True,
                        "%",
                        dig(alt, key),
                    )
                )
            out.append(
                Comparison(
                    "groups",
                    f"group-photo wrong names (Rollcall {label})",
                    ours["given"] - ours["right"],
                    peer["given"] - peer["right"],
                    False,
                    "",
                    None if alt is None else alt["given"] - alt["right"],
                )
            )
    return out


def _speed_comparisons(res: JsonDict | None) -> list[Comparison]:
    if not res or not res.get("peer_available"):
        return []
    out = []
    for label, photo in res["stages"]["photos"].items():
        out.append(
            Comparison(
                "speed",
                f"end-to-end latency, {label} ({photo['file'].rsplit('/', 1)[-1]}; faces found: "
                f"Rollcall {photo['rollcall']['faces']}, face_recognition {photo[PEER]['faces']})",
                photo["rollcall"]["end_to_end_ms"],
                photo[PEER]["end_to_end_ms"],
                False,
                "ms",
                dig(photo.get(ALT), "end_to_end_ms"),
            )
        )
    for row in res["embedding"]["rows"]:
        out.append(
            Comparison(
                "speed",
                f"embedding network passes per second, batch {row['batch']} (Rollcall: FaceNet)",
                row["rollcall_per_second"],
                row["face_recognition_per_second"],
                True,
                "/s",
            )
        )
    return out


def _scale_comparisons(res: JsonDict | None) -> list[Comparison]:
    if not res or not res.get("peer_available") or not res["rows"]:
        return []
    row = res["rows"][-1]
    out = []
    for faces in res["faces_per_photo"]:
        out.append(
            Comparison(
                "scale",
                f"matching {faces} face(s) against {row['gallery']:,} stored embeddings",
                row[f"rollcall_ms_{faces}"],
                row[f"face_recognition_ms_{faces}"],
                False,
                "ms",
            )
        )
    out.append(
        Comparison(
            "scale",
            f"stored matrix for {row['gallery']:,} people (templates vs encodings)",
            row["rollcall_template_bytes"],
            row["face_recognition_encoding_bytes"],
            False,
            "bytes",
        )
    )
    out.append(
        Comparison(
            "scale",
            f"embeddings held for {row['gallery']:,} people (Rollcall: templates + "
            f"{res['views_per_student']} registration views each, as the service keeps them)",
            row["rollcall_template_bytes"] + row["rollcall_views_bytes"],
            row["face_recognition_encoding_bytes"],
            False,
            "bytes",
        )
    )
    return out


def comparison_rows(items: Sequence[Comparison]) -> list[list[str]]:
    """Rates compare as a difference in percentage points, everything else as a ratio. With
    FaceNet-alone figures (:attr:`Comparison.alternative`), a column shows them."""
    alternatives = any(c.alternative is not None for c in items)
    return [
        [
            c.what,
            fmt(c.ours, c.unit),
            *([fmt(c.alternative, c.unit)] if alternatives else []),
            fmt(c.peer, c.unit),
            f"{100 * (c.ours - c.peer):+.2f} pt" if c.unit == "%" else fmt_ratio(c.ratio),
            c.winner,
        ]
        for c in items
    ]


COMPARISON_HEADER = [
    "figure",
    OURS,
    PEER,
    "Rollcall − face_recognition (rates) or Rollcall ÷ face_recognition",
    "better",
]


def comparison_table(items: Sequence[Comparison]) -> list[str]:
    if any(c.alternative is not None for c in items):
        header = [
            COMPARISON_HEADER[0],
            f"{OURS} (default: fused)",
            f"{ALT_LABEL} (not compared)",
            *COMPARISON_HEADER[2:],
        ]
        return table(header, comparison_rows(items), "lrrrrl")
    return table(COMPARISON_HEADER, comparison_rows(items), "lrrrl")


# -- sections -------------------------------------------------------------------------------------


def render_verification(res: JsonDict) -> list[str]:
    proto = res["protocol"]
    lines = [
        f"{proto['dataset']}, {proto['folds']} folds, {proto['pairs']} pairs, {proto['photos']} "
        f"photos. Threshold: {proto['threshold_selection']}. Several faces: "
        f"{proto['multiple_faces']}. No face: {proto['no_face_policy']}. Published reference: "
        f"dlib {pct(proto['published_reference']['dlib'])}, FaceNet CASIA-WebFace "
        f"{pct(proto['published_reference']['facenet_casia_webface'])} (their own protocols).",
        "",
    ]
    rows = []
    for name, sysres in res["systems"].items():
        label = system_label(name, sysres) + (" (distance)" if name == PEER else "")
        for policy in ("strict", "fallback"):
            entry = sysres[policy]
            rows.append(
                [
                    label,
                    policy,
                    f"{pct(entry['accuracy'])} ± {100 * entry['std']:.2f}",
                    f"{entry['threshold_mean']:.3f}",
                    (
                        f"{pct(entry['default_tolerance_accuracy'])} ± "
                        f"{100 * entry['default_tolerance_std']:.2f} (at {entry['default_tolerance']})"
                    )
                    if "default_tolerance_accuracy" in entry
                    else "-",
                    sysres["photos_without_face"],
                    sysres["pairs_with_a_failed_photo"],
                ]
            )
    lines += table(
        [
            "system",
            "no-face policy",
            f"accuracy, {proto['folds']}-fold (mean ± std)",
            "mean threshold",
            "at default tolerance",
            "photos without face",
            "pairs affected",
        ],
        rows,
        "llrrrrr",
    )
    if ALT in res["systems"]:
        lines += [
            "Rollcall's score is the fused similarity (each model's cosine mapped onto FaceNet's "
            "cosine scale with `ml.fusion.SCORE_SCALES`, then averaged); FaceNet alone is the plain "
            "cosine of the FaceNet part of the same embeddings.",
            "",
        ]
    if not res.get("peer_available"):
        lines += ["face_recognition was not installed (`uv sync --group bench`).", ""]
    return lines


def render_oneshot(res: JsonDict) -> list[str]:
    proto = res["protocol"]
    cal, test = proto["calibration"], proto["test"]
    lines = [
        f"{proto['dataset']}: students are {proto['students']}; strangers are {proto['strangers']}. "
        f"Split (seed {proto['seed']}) into a calibration class ({cal['students']} students, "
        f"{cal['strangers']} strangers) and a test class ({test['students']} students, "
        f"{test['strangers']} strangers; {test['genuine_probes']} genuine and "
        f"{test['stranger_probes']} stranger probes). The {pct(proto['false_accept_target'])} "
        "false-accept threshold is chosen on the calibration class only; every rate below is on "
        "the test class.",
        "",
    ]
    rows = []
    for name, sysres in res["systems"].items():
        for method in sysres["methods"].values():
            system = system_label(name, sysres)
            for point, threshold_key in (
                ("at_default", "default_threshold"),
                ("at_calibrated", "calibrated_threshold"),
            ):
                rates = method[point]
                if rates is None:
                    continue
                rows.append(
                    [
                        f"{system}: {method['label']}",
                        ("default" if point == "at_default" else "1% FA (calibrated)")
                        + f" = {method[threshold_key]}",
                        pct(rates["rank1"]),
                        pct(rates["named_right"]),
                        pct(rates["wrong_name"]),
                        pct(rates["false_accept"]),
                    ]
                )
    lines += table(
        [
            "system / decision",
            "threshold",
            "rank-1",
            "named right",
            "wrong name",
            "strangers accepted",
        ],
        rows,
        "llrrrr",
    )
    sizes = {
        name: sysres["false_accept_by_class_size"]
        for name, sysres in res["systems"].items()
        if "false_accept_by_class_size" in sysres
    }
    school_sizes = {
        name: sysres["false_accept_by_class_size_school"]
        for name, sysres in res["systems"].items()
        if "false_accept_by_class_size_school" in sysres
    }
    columns = {(name, ""): v for name, v in sizes.items()}
    columns.update(
        {(name, f" in a school of {v['school']}"): v for name, v in school_sizes.items()}
    )
    if sizes:
        lines += [
            "### Strangers accepted at the default threshold, by class size",
            "",
            "Share of the test class's stranger probes given a name when the class has that many "
            "students (mean of random classes drawn from the test class, min-max in brackets; "
            "the last row is the whole test class, the figure of the table above). *In a school*: "
            "every other student of both classes is the school cohort.",
            "",
        ]
        students = sorted({r["students"] for v in sizes.values() for r in v["rows"]})
        header = ["students"] + [
            f"{system_label(name, res['systems'][name])}{where} (at {v['threshold']})"
            for (name, where), v in columns.items()
        ]
        sizes = {f"{name}{where}": v for (name, where), v in columns.items()}
        size_rows: list[list[object]] = []
        for count in students:
            cells: list[object] = [count]
            for value in sizes.values():
                row = next((r for r in value["rows"] if r["students"] == count), None)
                cells.append(
                    "-"
                    if row is None
                    else pct(row["false_accept"])
                    + (
                        f" ({pct(row['min'])}–{pct(row['max'])})"
                        if row.get("classes", 1) > 1
                        else ""
                    )
                )
            size_rows.append(cells)
        lines += table(header, size_rows)
    notes = []
    for name, sysres in res["systems"].items():
        system = system_label(name, sysres)
        notes.append(
            f"{system}: {sysres['registration_photos_without_face']} registration photos without "
            f"a face (registered from the central box), {sysres['test_probes_without_face']} test "
            "probes without a face (no name given)."
        )
    return [*lines, " ".join(notes), ""]


def render_groups(res: JsonDict) -> list[str]:
    lines = ["### Detection", ""]
    rows = []
    for det in res["detection"].values():
        totals = det["totals"]
        rows.append(
            [
                det["label"],
                totals["annotated_photos"],
                totals["annotated_faces"],
                totals["detected"],
                totals["matched"],
                pct(totals["precision"]),
                pct(totals["recall"]),
                f"{totals['exact_count_found']} / {totals['exact_count_expected']}"
                if totals["exact_count_photos"]
                else "-",
            ]
        )
    lines += table(
        [
            "detector",
            "annotated photos",
            "faces",
            "detections",
            "matched",
            "precision",
            "recall",
            "count-only photos: found / expected",
        ],
        rows,
        "lrrrrrrr",
    )
    att = res["attendance"]
    lines += [
        "### Attendance end to end",
        "",
        f"Class: the {att['class_size']} identities of `faces/people`; "
        f"{att['photos']} group photos with enrolable people, default thresholds.",
        "",
    ]
    rows = []
    for name, sysres in att["systems"].items():
        system = system_label(name, sysres)
        for method_name, method in sysres["methods"].items():
            totals = method["totals"]
            label = {"stage1": "stage 1 (default)", "two_stage": "two-stage head"}.get(
                method_name, "nearest within 0.6"
            )
            threshold = sysres.get("default_threshold")
            rows.append(
                [
                    f"{system}, {label}",
                    "-" if threshold is None else f"{threshold:g}",
                    sysres["registered"],
                    totals["people"],
                    totals["given"],
                    totals["right"],
                    totals["given"] - totals["right"],
                    pct(totals["precision"]),
                    pct(totals["recall"]),
                ]
            )
    lines += table(
        [
            "system",
            "threshold",
            "registered",
            "people in photos",
            "names given",
            "right",
            "wrong",
            "precision",
            "recall",
        ],
        rows,
        "lrrrrrrrr",
    )
    systems = att["systems"]
    columns = [
        (name, "stage1" if "stage1" in sysres["methods"] else "nearest")
        for name, sysres in systems.items()
    ]
    per_photo = []
    for index, photo in enumerate(systems["rollcall"]["methods"]["stage1"]["photos"]):
        row = [photo["name"], ", ".join(photo["expected"])]
        row += [
            _named(systems[name]["methods"][method]["photos"][index]) for name, method in columns
        ]
        per_photo.append(row)
    header = ["photo", "enrolable people"] + [
        f"{system_label(name, systems[name])} named" for name, _ in columns
    ]
    lines += table(header, per_photo, "l" * len(header))
    return lines


def _named(photo: JsonDict) -> str:
    wrong = [n for n in photo["named"] if n not in photo["expected"]]
    text = f"{photo['right']}/{photo['people']} right"
    if wrong:
        text += "; wrong: " + ", ".join(wrong)
    duplicates = len(photo["named"]) - len(set(photo["named"]))
    if duplicates:
        text += f"; {duplicates} repeated"
    return text


BUSY_SHARE = 0.15
"""Share of the CPU used by other processes above which the speed figures are flagged."""


def render_speed_before_after(res: JsonDict, previous: JsonDict) -> list[str]:
    """This run's end-to-end times, embedding rate and memory beside the run it replaced."""
    lines = [
        "### Before and after",
        "",
        f"The previous run of this section: {previous.get('date')}, commit "
        f"`{str(previous.get('git_commit'))[:10]}` (other processes used "
        f"{100 * (previous.get('cpu_used_by_other_processes') or 0):.0f} % of the CPU then). "
        "Each run's ratio to face_recognition is measured within that run.",
        "",
    ]
    rows = []
    for label, now in res["stages"]["photos"].items():
        before = previous["photos"].get(label)
        ours, peer = now["rollcall"]["end_to_end_ms"], now.get(PEER, {}).get("end_to_end_ms")
        if before is None:
            rows.append(
                [label, "-", f"{ours:.0f} ms", "-", "-", fmt_ratio(ours / peer) if peer else "-"]
            )
            continue
        was, was_peer = (
            before["rollcall"]["end_to_end_ms"],
            before.get(PEER, {}).get("end_to_end_ms"),
        )
        rows.append(
            [
                label,
                f"{was:.0f} ms",
                f"{ours:.0f} ms",
                fmt_ratio(ours / was),
                fmt_ratio(was / was_peer) if was_peer else "-",
                fmt_ratio(ours / peer) if peer else "-",
            ]
        )
    lines += table(
        [
            "photo",
            f"{OURS} before",
            f"{OURS} now",
            "now ÷ before",
            "÷ face_recognition before",
            "÷ face_recognition now",
        ],
        rows,
        "lrrrrr",
    )
    batch8 = [r for r in res["embedding"]["rows"] if r["batch"] == 8]
    old8 = [r for r in previous.get("embedding", []) if r["batch"] == 8]
    if batch8 and old8:
        lines += [
            f"FaceNet passes per second at batch 8: {old8[0]['rollcall_per_second']:.1f} before, "
            f"{batch8[0]['rollcall_per_second']:.1f} now; dlib's ResNet "
            f"{old8[0].get('rollcall_dlib_per_second', 0):.1f} before, "
            f"{batch8[0].get('rollcall_dlib_per_second', 0):.1f} now.",
            "",
        ]
    http = res.get("http", {})
    if previous.get("rss_idle_bytes") and http.get("rss_idle_bytes"):
        lines += [
            f"The service's memory when ready (RSS): {previous['rss_idle_bytes'] / 2**20:.0f} MiB "
            f"before, {http['rss_idle_bytes'] / 2**20:.0f} MiB now; peak under load "
            f"{previous['rss_peak_bytes'] / 2**20:.0f} MiB before, "
            f"{http['rss_peak_bytes'] / 2**20:.0f} MiB now.",
            "",
        ]
    return lines


def render_speed_same_run(res: JsonDict) -> list[str]:
    """The previous commit's path, timed in this run beside the current one."""
    rows = []
    for label, photo in res["stages"]["photos"].items():
        ours = photo.get("rollcall", {})
        previous = ours.get("previous_end_to_end_ms")
        if previous is None:
            continue
        peer = photo.get(PEER, {}).get("end_to_end_ms")
        rows.append(
            [
                label,
                f"{ours['faces_embedded']} ({ours['image'].get('faces_mirrored', 0)})",
                fmt(previous, "ms"),
                fmt(ours["end_to_end_ms"], "ms"),
                fmt_ratio(ours["end_to_end_ms"] / previous),
                fmt_ratio(previous / peer) if peer else "-",
                fmt_ratio(ours["end_to_end_ms"] / peer) if peer else "-",
            ]
        )
    if not rows:
        return []
    return [
        "### Before and after, timed in this run",
        "",
        "*Before* is the previous commit's path, timed in this run on the same photos: MTCNN "
        "cutting every crop from the photo, FaceNet's crop and mirror for every face, dlib's chip "
        "alone, the class alone at 0.36 (`bench.speed.previous_recognise`). *Now* "
        "(`FacePipeline.recognise`): big candidate boxes cut from halved copies, one FaceNet and "
        "one dlib pass a face, and both mirror passes only for the faces whose decision is within "
        "`PipelineConfig.mirror_band` of changing (in brackets: how many, against the matching "
        "class of 50).",
        "",
        *table(
            [
                "photo",
                "faces embedded (mirrored)",
                "before",
                "now",
                "now ÷ before",
                "before ÷ face_recognition",
                "now ÷ face_recognition",
            ],
            rows,
        ),
    ]


def render_speed(res: JsonDict, meta: JsonDict | None = None) -> list[str]:
    stages = res["stages"]
    peer = res.get("peer_available", False)
    other = (meta or {}).get("cpu_used_by_other_processes")
    lines = [
        f"Load average (1/5/15 min) during this section: stages {stages['load_average_before']} → "
        f"{stages['load_average_after']}, HTTP {res['http']['load_average_before']} → "
        f"{res['http']['load_average_after']}. Medians of {stages['repeats']} runs after a warm-up "
        "(fewer on the crowd photo, see the JSON).",
        "",
    ]
    if other is None or other > BUSY_SHARE:
        share = "an unknown share" if other is None else f"{100 * other:.0f} %"
        lines += [
            f"**The machine was busy**: other processes used {share} of its CPU during this "
            "section. Absolute times are pessimistic and noisy; the ratios between the two "
            "systems, measured one after the other in the same run, are the figures to compare. "
            "Re-measure on a quiet machine with "
            "`uv run --group bench python -m bench --sections speed`.",
            "",
        ]
    else:
        lines += [
            f"Other processes used {100 * other:.0f} % of the CPU during this section (the load "
            "average includes the benchmark itself).",
            "",
        ]
    if meta is not None and meta.get("previous"):
        lines += render_speed_before_after(res, meta["previous"])
    lines += render_speed_same_run(res)
    lines += [
        "### Per-stage latency (ms)",
        "",
        f"Match = against a class of {stages['class_size']} students. Segment (GrabCut) is off by "
        "default and not in the total (not timed on photos of more than ten faces). face_recognition's align = its 5-point landmarks; its embed "
        "includes cutting the face chip. Draw = what the service adds for the phone after "
        "recognition (the annotated copy, capped by `ROLLCALL_ANNOTATED_MAX_SIDE`, as JPEG and "
        "base64), not in the sum nor in end to end; face_recognition draws nothing. Rollcall's "
        "faces under `min_recognisable_face` (28 px) are reported as too small and not embedded.",
        "",
    ]
    rows = []
    per_face: list[str] = []
    for label, photo in stages["photos"].items():
        systems = [
            (key, system_label(key, photo[key]))
            for key in ("rollcall", ALT, PEER)
            if key in photo and (key != PEER or peer)
        ]
        for key, name in systems:
            entry = photo[key]
            st = entry["stages_ms"]
            total = sum(v for k, v in st.items() if k not in ("segment", "draw") and v is not None)
            rows.append(
                [
                    f"{label}: `{photo['file'].rsplit('/', 1)[-1]}` {photo['size']}",
                    name,
                    faces_cell(entry),
                    *[f"{st[k]:.1f}" if st.get(k) is not None else "-" for k in _STAGES],
                    f"{total:.1f}",
                    f"{entry['end_to_end_ms']:.1f}",
                ]
            )
            for model, extra in (entry.get("secondary_ms") or {}).items():
                if extra.get("embed_per_face") is not None:
                    per_face.append(
                        f"{label}: {model} {extra['embed_per_face']:.1f} ms a face "
                        f"({extra['embed']:.1f} ms for {entry.get('faces_embedded', entry['faces'])}, its chips "
                        f"{extra['align']:.1f} ms)"
                    )
        ratios = []
        if ALT in photo:
            ratios.append(
                (
                    f"ratio {OURS} ÷ {ALT_LABEL}",
                    photo["rollcall"]["end_to_end_ms"] / photo[ALT]["end_to_end_ms"],
                )
            )
        if peer:
            ratios.append(
                (
                    f"ratio {OURS} ÷ face_recognition",
                    photo["rollcall"]["end_to_end_ms"] / photo[PEER]["end_to_end_ms"],
                )
            )
            if ALT in photo:
                ratios.append(
                    (
                        f"ratio {ALT_LABEL} ÷ face_recognition",
                        photo[ALT]["end_to_end_ms"] / photo[PEER]["end_to_end_ms"],
                    )
                )
        for what, ratio in ratios:
            rows.append(["", what, "", *[""] * len(_STAGES), "", fmt_ratio(ratio)])
    lines += table(
        ["photo", "system", "faces", *_STAGES, "sum", "end to end"],
        rows,
        "llr" + "r" * len(_STAGES) + "rr",
    )
    if per_face:
        lines += [
            "The fused pipeline's align and embed include the dlib model (its 5-point chip, then its "
            "ResNet, one pass a face); dlib's share: " + "; ".join(per_face) + ".",
            "",
        ]
    emb = res["embedding"]
    lines += ["### Embedding throughput", ""]
    rows = []
    dlib = any("rollcall_dlib_per_second" in row for row in emb["rows"])
    for row in emb["rows"]:
        cells = [row["batch"], fmt(row["rollcall_per_second"], "/s")]
        if dlib:
            cells.append(fmt(row.get("rollcall_dlib_per_second"), "/s"))
        if peer:
            cells += [
                fmt(row["face_recognition_per_second"], "/s"),
                fmt_ratio(row["rollcall_per_second"] / row["face_recognition_per_second"]),
            ]
        rows.append(cells)
    header = ["batch", f"{OURS} FaceNet 160 px passes"]
    if dlib:
        header.append(f"{OURS} dlib ResNet 150 px passes")
    if peer:
        header += [f"{PEER} ResNet 150 px passes", "ratio (FaceNet ÷ face_recognition)"]
    lines += table(header, rows)
    lines += [
        f"Rollcall embeds every face with FaceNet twice (crop and mirror), so its FaceNet faces per "
        f"second are half its passes per second; the fused default adds one dlib pass a face. "
        f"Median of {emb['repeats']} runs.",
        "",
    ]
    growth = res["class_growth"]
    lines += [
        "### Registration and head training as the class grows (LFW identities)",
        "",
        "Registration = enrolment of one photo by the default pipeline (detect, crop, 15 augmented "
        "FaceNet views embedded, and the dlib embedding when fused) + the "
        "class gallery rebuilt + the duplicate check, as the service computes it (storage not "
        "included; the HTTP figure below includes it). Head training: from scratch, and "
        "warm-started after one more student (what the service's background trainer does).",
        "",
    ]
    lines += table(
        [
            "students",
            "registration",
            "enrolment alone (timed separately)",
            "head training (cold)",
            "steps",
            "head retraining (+1, warm)",
        ],
        [
            [
                r["students"],
                fmt(r["registration_ms"], "ms"),
                fmt(r["enrolment_ms"], "ms"),
                fmt(r["head_training_s"], "s"),
                r["head_steps"],
                fmt(r["head_retraining_warm_s"], "s"),
            ]
            for r in growth["rows"]
        ],
    )
    http = res["http"]
    lines += [
        "### HTTP service: `/mark/detect`",
        "",
        f"The real service on loopback (`uvicorn app.main:app`, disk storage, default settings: "
        f"one inference at a time), started in {http['startup_s']} s; "
        f"{http['students_registered']} students registered through `/register/register-student` "
        f"(median {fmt(http['registration_ms_median'], 'ms')}, p95 "
        f"{fmt(http['registration_ms_p95'], 'ms')} per registration, HTTP included); head "
        f"`{http['head_state_before_load']}` before the load. Photo `{http['photo']}`.",
        "",
    ]
    lines += table(
        ["concurrent clients", "requests", "failures", "requests/s", "p50", "p95"],
        [
            [
                lv["concurrency"],
                lv["requests"],
                lv["failures"],
                f"{lv['requests_per_second']:.2f}",
                fmt(lv["p50_ms"], "ms"),
                fmt(lv["p95_ms"], "ms"),
            ]
            for lv in http["levels"]
        ],
    )
    lines += [
        f"Service RSS: {fmt_bytes(http['rss_idle_bytes'])} when ready, peak "
        f"{fmt_bytes(http['rss_peak_bytes'])} ({http['rss_peak_source']}).",
        "",
    ]
    return lines


def faces_cell(entry: Mapping[str, Any]) -> str:
    """Faces found, and how many were embedded when some were too small to recognise."""
    embedded = entry.get("faces_embedded")
    if embedded is None or embedded == entry["faces"]:
        return str(entry["faces"])
    return f"{entry['faces']} ({embedded} embedded)"


_STAGES = ("decode", "detect", "align", "segment", "embed", "match", "draw")


def render_scale(res: JsonDict) -> list[str]:
    peer = res.get("peer_available", False)
    rows = []
    for row in res["rows"]:
        cells: list[object] = [f"{row['gallery']:,}"]
        for faces in res["faces_per_photo"]:
            cells.append(fmt(row[f"rollcall_ms_{faces}"], "ms"))
            if peer:
                cells.append(fmt(row[f"face_recognition_ms_{faces}"], "ms"))
        cells += [
            fmt_bytes(row["rollcall_template_bytes"]),
            fmt_bytes(row["rollcall_views_bytes"]),
            fmt_bytes(row[f"rollcall_peak_bytes_{res['faces_per_photo'][-1]}"]),
        ]
        if peer:
            cells += [
                fmt_bytes(row["face_recognition_encoding_bytes"]),
                fmt_bytes(row[f"face_recognition_peak_bytes_{res['faces_per_photo'][-1]}"]),
            ]
        rows.append(cells)
    header = ["stored"]
    for faces in res["faces_per_photo"]:
        header.append(f"{OURS} {faces} face(s)")
        if peer:
            header.append(f"{PEER} {faces} face(s)")
    last = res["faces_per_photo"][-1]
    header += [
        f"{OURS} templates",
        f"{OURS} views ({res['views_per_student']}/student)",
        f"{OURS} peak during a {last}-face match",
    ]
    if peer:
        header += [f"{PEER} encodings", f"{PEER} peak during a {last}-face match"]
    lines = [
        "Synthetic unit vectors; Rollcall `match_faces` (cohort score + joint assignment, 512-D "
        "float32), face_recognition `face_distance` per face (128-D float64). Median of "
        f"{res['repeats']} runs; peak = tracemalloc peak of one call. Templates, views and encodings "
        "are array sizes (the views are what the service keeps per student besides the template).",
        "",
        *table(header, rows),
    ]
    school = res.get("school")
    if school:
        first = school[0]
        lines += [
            f"**A school cohort.** A class of {first['class']} (FaceNet and dlib templates) matching "
            f"a photo of {first['faces']} faces alone and with the school's other students "
            f"(`ml.matching.Cohort`, built from classes of {first['class']}) and "
            f"{first['known_strangers']} known strangers; the look-alike rule runs once per class "
            "and cohort (then remembered).",
            "",
            *table(
                [
                    "other students",
                    "cohort arrays",
                    "building the cohort",
                    "look-alike rule (once)",
                    "match, alone",
                    "match, with cohort and known strangers",
                ],
                [
                    [
                        f"{row['cohort']:,}",
                        fmt_bytes(row["cohort_bytes"]),
                        fmt(row["build_ms"], "ms"),
                        fmt(row["first_match_extra_ms"], "ms"),
                        fmt(row["match_alone_ms"], "ms"),
                        fmt(row["match_ms"], "ms"),
                    ]
                    for row in school
                ],
            ),
        ]
    return lines


RENDERERS = {
    "verification": render_verification,
    "oneshot": render_oneshot,
    "school": render_school,
    "groups": render_groups,
    "speed": render_speed,
    "scale": render_scale,
    "term": render_term,
    "service-term": render_service_term,
}


def _rates_cell(rates: JsonDict | None) -> str:
    if not rates:
        return "-"
    return (
        f"{pct(rates['named_right'])} · {pct(rates['wrong_name'])} · {pct(rates['false_accept'])}"
    )


def render_before_after(data: JsonDict) -> list[str]:
    """Each section's headline figures beside those of the run it replaced (``previous``)."""
    sections = data.get("sections", {})
    rows: list[list[str]] = []

    def when(previous: JsonDict) -> str:
        return f"{str(previous.get('date'))[:10]} `{str(previous.get('git_commit'))[:10]}`"

    verification = sections.get("verification", {})
    if verification.get("previous"):
        now = dig(verification, "results", "systems", "rollcall", "fallback", "accuracy")
        rows.append(
            [
                "LFW View-2 accuracy (fused, fallback)",
                when(verification["previous"]),
                pct(verification["previous"].get("accuracy")),
                pct(now),
            ]
        )
    oneshot = sections.get("oneshot", {})
    previous = oneshot.get("previous")
    if previous:
        before = previous["methods"].get("stage1", {})
        methods = dig(oneshot, "results", "systems", "rollcall", "methods") or {}
        for key in ("stage1", "stage1_school"):
            if key not in methods:
                continue
            rows.append(
                [
                    "one-shot test class at the default: named right · wrong · strangers "
                    f"({'the class alone' if key == 'stage1' else 'with the school cohort'})",
                    when(previous),
                    f"{_rates_cell(before.get('at_default'))} (at {before.get('default_threshold')})",
                    f"{_rates_cell(methods[key]['at_default'])} "
                    f"(at {methods[key]['default_threshold']})",
                ]
            )
        before_sizes = {
            r["students"]: r
            for r in (previous.get("false_accept_by_class_size") or {}).get("rows", [])
        }
        ours = dig(oneshot, "results", "systems", "rollcall") or {}
        alone = {r["students"]: r for r in dig(ours, "false_accept_by_class_size", "rows") or []}
        school = {
            r["students"]: r for r in dig(ours, "false_accept_by_class_size_school", "rows") or []
        }
        for size, row in before_sizes.items():
            now_cells = [pct(alone[size]["false_accept"]) if size in alone else "-"]
            if size in school:
                now_cells.append(f"{pct(school[size]['false_accept'])} in the school")
            rows.append(
                [
                    f"one-shot strangers accepted at the default, class of {size}",
                    when(previous),
                    pct(row["false_accept"]),
                    " · ".join(now_cells),
                ]
            )
    groups = sections.get("groups", {})
    if groups.get("previous"):
        before = groups["previous"]["attendance"].get("rollcall", {})
        now = dig(groups, "results", "attendance", "systems", "rollcall") or {}
        b, n = before.get("totals") or {}, dig(now, "methods", "stage1", "totals") or {}
        if b and n:
            rows.append(
                [
                    "group photos: people named right of those present, wrong names",
                    when(groups["previous"]),
                    f"{b['right']} of {b['people']}, {b['given'] - b['right']} wrong "
                    f"(at {before.get('default_threshold')})",
                    f"{n['right']} of {n['people']}, {n['given'] - n['right']} wrong "
                    f"(at {now.get('default_threshold')})",
                ]
            )
    term = sections.get("term", {})
    if term.get("previous"):
        for scenario in ("classes", "one_class"):
            before_totals = (term["previous"]["scenarios"].get(scenario) or {}).get("teacher_mean")
            now_totals = dig(term, "results", "scenarios", scenario, "policies", "school", "totals")
            if not before_totals or not now_totals:
                continue

            def cell(totals: list[JsonDict]) -> str:
                strangers = sum(t["strangers_accepted"] for t in totals)
                shown = sum(t["stranger_faces"] for t in totals)
                return (
                    " · ".join(
                        f"{span_label(t['weeks'])} {pct(t['named_right_rate'])}" for t in totals
                    )
                    + f"; wrong {sum(t['wrong_name'] for t in totals)}; strangers "
                    f"{strangers} of {shown}"
                )

            rows.append(
                [
                    f"simulated term ({scenario.replace('_', ' ')}), teacher + auto-confirm: "
                    "named right, wrong names, strangers accepted",
                    when(term["previous"]),
                    cell(before_totals),
                    cell(now_totals),
                ]
            )
    speed = sections.get("speed", {})
    previous = speed.get("previous")
    photos = dig(speed, "results", "stages", "photos") or {}
    for label, photo in photos.items():
        ours = photo.get("rollcall", {})
        peer = photo.get(PEER, {}).get("end_to_end_ms")
        before = dig(previous, "photos", label, "rollcall", "end_to_end_ms") if previous else None
        same_run = ours.get("previous_end_to_end_ms")
        if before is None and same_run is None:
            continue
        before_cells = []
        if before is not None:
            before_cells.append(f"{fmt(before, 'ms')} ({when(previous or {})})")
        if same_run is not None:
            before_cells.append(f"{fmt(same_run, 'ms')} (its path, timed in this run)")
        rows.append(
            [
                f"end to end, {label}",
                "",
                "; ".join(before_cells),
                f"{fmt(ours['end_to_end_ms'], 'ms')}"
                + (
                    f" ({fmt_ratio(ours['end_to_end_ms'] / peer)} face_recognition)" if peer else ""
                ),
            ]
        )
    if not rows:
        return []
    return [
        "## Before and after",
        "",
        "Each section's headline figures beside those of the run it replaced (the date and commit "
        "of that run; the same protocol and data). Section 3 measures the previous default "
        "(0.36, each class alone) in its own run.",
        "",
        *table(["figure", "before: run", "before", "now"], rows, "llrr"),
    ]


def render_markdown(data: JsonDict) -> str:
    sections = data.get("sections", {})
    lines = [
        "# Benchmarks: Rollcall side by side with face_recognition (dlib)",
        "",
        "Generated by `uv run --group bench python -m bench` from `docs/benchmarks.json`; do not "
        "edit by hand. One section alone: `--sections speed` (merged into the JSON). "
        "`--render-only` re-renders this file.",
        "",
    ]
    machine = data.get("machine", {})
    if machine:
        lines += [
            f"Machine: {machine.get('cpu')}, {machine.get('cores')} cores, "
            f"{machine.get('memory_gib')} GiB, no GPU used; Python {machine.get('python')}, "
            f"torch {machine.get('torch')} ({machine.get('torch_threads')} threads), dlib "
            f"{machine.get('dlib')}, face_recognition {machine.get('face_recognition')}, "
            f"onnxruntime {machine.get('onnxruntime')}.",
            "",
        ]
    lines += table(
        [
            "section",
            "date (UTC)",
            "commit",
            "seconds",
            "load avg before → after",
            "CPU used by other processes",
            "command",
        ],
        [
            [
                name,
                s["date"],
                (s["machine"].get("git_commit") or "?")[:10]
                + (" (modified)" if s["machine"].get("git_dirty") else ""),
                f"{s['seconds']:.0f}",
                f"{s['load_average_before']} → {s['load_average_after']}",
                f"{100 * s['cpu_used_by_other_processes']:.0f} %"
                if "cpu_used_by_other_processes" in s
                else "not recorded",
                f"`{s['command']}`" + (" (quick)" if s.get("quick") else ""),
            ]
            for name, s in sections.items()
        ],
        "lllllrl",
    )
    if any(s.get("quick") for s in sections.values()):
        lines += ["**Quick run: subsets only; not the published figures.**", ""]

    found = comparisons(data)
    losses = [c for c in found if c.winner == PEER]
    if any(c.alternative is not None for c in found):
        lines += [
            "**Rollcall** is the default pipeline: FaceNet and dlib's ResNet fused "
            "(`ml.fusion`); every comparison is about it. **Rollcall FaceNet alone** "
            '(`PipelineConfig(embedders=("facenet",))`, the previous default) is measured in the '
            "same run from the same computation and shown beside it, never compared.",
            "",
        ]
    lines += render_before_after(data)
    lines += ["## Where Rollcall loses to face_recognition", ""]
    if losses:
        lines += [
            f"Rollcall is worse than face_recognition on {len(losses)} of the {len(found)} "
            "compared figures below (both systems measured in the same run for each figure):",
            "",
        ]
        lines += comparison_table(losses)
        lines += [
            "Read a rate together with the others measured at the same threshold: at its default "
            "tolerance face_recognition names more students because it also accepts many "
            "strangers (one-shot table), and the figures at thresholds matched to 1% false "
            "accepts compare the two systems at equal risk.",
            "",
        ]
    elif found:
        lines += [f"On none of the {len(found)} compared figures.", ""]
    else:
        lines += ["No comparison available (face_recognition not measured).", ""]
    lines += ["## Every comparison", ""]
    lines += comparison_table(found)

    for name, title in SECTION_TITLES.items():
        res = results(data, name)
        if res is None:
            continue
        lines += [f"## {title}", ""]
        if name == "speed":
            lines += render_speed(res, sections[name])
        else:
            lines += RENDERERS[name](res)
    return "\n".join(lines).rstrip() + "\n"
