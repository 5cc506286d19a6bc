"""The simulated-term section of ``docs/benchmarks.md`` (``bench.term``), from the JSON only."""

from __future__ import annotations

from bench.render_common import JsonDict, pct, span_label, table

MAIN_POLICIES = (
    "previous",
    "none",
    "teacher_mean",
    "school_only",
    "school",
    "teacher_max",
    "auto_mean",
)
"""The per-week table's columns (the head and sample-bound variants are in the totals)."""
SHORT_LABELS = {
    "previous": "before (0.36, class alone)",
    "none": "no learning",
    "teacher_mean": "teacher + auto, class alone",
    "school_only": "teacher + auto, school",
    "school": "teacher + auto, school, known strangers (default)",
    "teacher_max": "teacher + auto, max",
    "auto_mean": "auto only",
    "none_head": "no learning, head",
    "teacher_mean_head": "teacher + auto, mean, head",
}


def week_cell(week: JsonDict) -> str:
    cell = f"{pct(week['named_right_rate'])} · {week['wrong_name']} · {week['strangers_accepted']}"
    if week.get("recurring_faces"):
        cell += f" ({week['recurring_accepted']})"
    return cell


SCENARIO_TITLES = {
    "classes": "Classes of {size}",
    "one_class": "Every student in one class ({size})",
    "people": "faces/people: one class of {size} (other sources, LFW strangers)",
    "recurring": "Classes of {size} with a recurring stranger",
}


def render_term(res: JsonDict) -> list[str]:
    proto = res["protocol"]
    rule = proto["default_auto_confirm"]
    lines = [
        f"{proto['dataset']}: students are {proto['students']}, shuffled (seed {proto['seed']}) "
        "into classes. Week *w* is one class photo with every student's photo *w* (while they "
        f"have one: the class thins out after week 5) and {proto['strangers_per_session']} "
        "strangers never registered (new ones every week). The whole photo is decided at once at "
        f"the default threshold ({proto['threshold']}; before: "
        f"{proto.get('previous_threshold', 0.36)}), fused {' + '.join(proto['models'])}. *School*: "
        "the other classes' students (as registered) are the class's cohort "
        "(`ml.matching.Cohort`); *known strangers*: a stranger's face the teacher clears becomes "
        "negative evidence for the class (`ml.matching.KnownStrangers`). Templates of several "
        "photos are shortened by their spread (`ml.matching.aggregate_photos`); *before* is the "
        "previous default: re-normalised mean, the class alone at 0.36. "
        "After each session the policy learns: *teacher* assigns every missed or wrongly named "
        "student face to the right student and clears every wrong name; *auto* makes every face "
        f"named with a score at least {rule['min_score_margin']} over the threshold and a "
        f"similarity at least {rule['min_runner_up_gap']} over the runner-up a sample "
        "(`ml.samples.AutoConfirmRule`); the samples per student are bounded (default "
        f"{proto['default_max_samples']}, `ml.samples.select_samples`); *mean* and *max* "
        "combine the per-photo templates (registration photo and samples); *head* re-ranks close "
        "candidates with the projection head, retrained after every session on the registration "
        "views and the real samples (without learning: on the registration views).",
        "",
        "Each cell: named right · wrong names · strangers accepted (students' faces and "
        "strangers shown that week in the first columns); with a recurring stranger, in brackets "
        "the classes whose recurring stranger was given a name that week.",
        "",
    ]
    for name, scenario in res["scenarios"].items():
        sizes = sorted(set(scenario["class_sizes"]))
        title = SCENARIO_TITLES.get(name, name).format(size="–".join(str(s) for s in sizes))
        lines += [f"### {title} ({scenario['classes']} class(es))", ""]
        if name == "recurring":
            lines += [
                "Each class also has a recurring stranger: among the LFW identities with 3-5 "
                "photos (too few to be a student here, never a weekly stranger), the one whose "
                "first photo looks most like a student of the class, shown every week while they "
                "have a photo (a visiting teacher, a sibling). The teacher clears their name "
                "whenever they are given one.",
                "",
            ]
        lines += render_scenario(scenario["policies"])
    lines += render_auto_confirm(res["auto_confirm_grid"], rule)
    return lines


def render_scenario(policies: JsonDict) -> list[str]:
    lines: list[str] = []
    shown = [p for p in MAIN_POLICIES if p in policies]
    first = policies[shown[0]]["weeks"]
    rows = []
    for index, week in enumerate(first):
        rows.append(
            [
                week["week"],
                week["student_faces"],
                week["stranger_faces"],
                *(week_cell(policies[p]["weeks"][index]) for p in shown),
            ]
        )
    lines += table(
        ["week", "students", "strangers", *(SHORT_LABELS[p] for p in shown)],
        rows,
        "rrr" + "r" * len(shown),
    )
    total_rows = []
    for policy in policies.values():
        cells: list[object] = [policy["label"]]
        for span in policy["totals"]:
            cells.append(
                f"{pct(span['named_right_rate'])} · {span['wrong_name']} · "
                f"{span['strangers_accepted']}"
            )
        cells.append(sum(w["wrong_samples_auto"] for w in policy["weeks"]))
        cells.append(policy["weeks"][-1]["samples_kept"])
        recurring = sum(w.get("recurring_faces", 0) for w in policy["weeks"])
        if recurring:
            named = sum(w["recurring_accepted"] for w in policy["weeks"])
            cells.append(f"{named} of {recurring}")
        total_rows.append(cells)
    spans = [span_label(s["weeks"]) for s in policies[shown[0]]["totals"]]
    header = ["policy", *spans, "wrong faces auto-confirmed", "samples kept at the end"]
    if any(len(row) > len(header) for row in total_rows):
        header.append("recurring stranger named")
        total_rows = [row + ["-"] * (len(header) - len(row)) for row in total_rows]
    lines += table(header, total_rows, "l" + "r" * (len(header) - 1))
    return lines + head_verdict(policies)


def head_verdict(policies: JsonDict) -> list[str]:
    pairs = [("none", "none_head"), ("teacher_mean", "teacher_mean_head")]
    sentences = []
    for raw, head in pairs:
        if raw not in policies or head not in policies:
            continue
        a, b = policies[raw]["totals"], policies[head]["totals"]
        named_a = sum(s["named_right_rate"] * s["student_faces"] for s in a)
        named_b = sum(s["named_right_rate"] * s["student_faces"] for s in b)
        wrong_a = sum(s["wrong_name"] for s in a)
        wrong_b = sum(s["wrong_name"] for s in b)
        keys = ("named_right", "wrong_name", "strangers_accepted")
        identical = all(
            all(x[k] == y[k] for k in keys)
            for x, y in zip(policies[raw]["weeks"], policies[head]["weeks"], strict=True)
        )
        if identical:
            verdict = "changes nothing: the same counts, week by week, as"
        elif round(named_b) > round(named_a) and wrong_b <= wrong_a:
            verdict = "beats"
        else:
            verdict = "does not beat"
        sentences.append(
            f"{policies[head]['label']} {verdict} {policies[raw]['label']} "
            f"({round(named_b)} vs {round(named_a)} faces named right, {wrong_b} vs {wrong_a} "
            "wrong names over the term)."
        )
    if not sentences:
        return []
    return ["**The head:** " + " ".join(sentences), ""]


def render_auto_confirm(grid: JsonDict, rule: JsonDict) -> list[str]:
    lines = [
        "### Choosing the auto-confirm rule",
        "",
        "Every face named in the term (policies "
        f"{', '.join(grid['term']['policies'])}: {grid['term']['named_faces']} named, "
        f"{grid['term']['wrong_names']} of them wrongly) and in the one-shot section's two "
        f"classes (each probe alone, registration photo only: {grid['oneshot']['named_faces']} "
        f"named, {grid['oneshot']['wrong_names']} wrongly), counted by the rules that would have "
        "made them samples. The wrong ones reached at most "
        f"{grid['term']['wrong_max_score_margin']} (term) and "
        f"{grid['oneshot']['wrong_max_score_margin']} (one-shot) over the threshold. The default "
        "is the row in bold.",
        "",
    ]
    rows = []
    for term_row, oneshot_row in zip(grid["term"]["rows"], grid["oneshot"]["rows"], strict=True):
        margin, gap = term_row["min_score_margin"], term_row["min_runner_up_gap"]
        if gap not in (0.0, rule["min_runner_up_gap"]) and margin != rule["min_score_margin"]:
            continue
        bold = margin == rule["min_score_margin"] and gap == rule["min_runner_up_gap"]
        cells = [
            f"{margin:g}",
            f"{gap:g}",
            term_row["wrong_confirmed"],
            pct(term_row["right_confirmed_share"]),
            oneshot_row["wrong_confirmed"],
            pct(oneshot_row["right_confirmed_share"]),
        ]
        rows.append([f"**{c}**" for c in cells] if bold else cells)
    lines += table(
        [
            "score over threshold ≥",
            "over runner-up ≥",
            "term: wrong faces",
            "term: right faces taken",
            "one-shot: wrong faces",
            "one-shot: right faces taken",
        ],
        rows,
    )
    return lines
