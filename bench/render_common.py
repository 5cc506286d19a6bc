"""Formatting helpers every renderer of ``docs/benchmarks.md`` shares (``bench.render`` and the
per-section modules it calls import them from here, so none imports another's helpers)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

JsonDict = dict[str, Any]

OURS = "Rollcall"
PEER = "face_recognition"
ALT = "rollcall_facenet"
"""Rollcall with FaceNet alone (the previous default), shown beside the default in every table."""
ALT_LABEL = "Rollcall FaceNet alone"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "%":
        return f"{100 * value:.2f} %"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "/s":
        return f"{value:.1f}/s"
    if unit == "bytes":
        return fmt_bytes(value)
    return f"{value:g}"


def fmt_bytes(value: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None or not math.isfinite(ratio):
        return "-"
    return f"{ratio:.2f}x" if ratio < 100 else f"{ratio:.0f}x"


def pct(value: float | None) -> str:
    return fmt(value, "%")


def table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> list[str]:
    """Markdown table; ``align`` has one letter per column (``l`` or ``r``), default left then right."""
    spec = align or "l" + "r" * (len(header) - 1)
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if a == "r" else "---" for a in spec) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def results(data: JsonDict, name: str) -> JsonDict | None:
    section = data.get("sections", {}).get(name)
    return None if section is None else section.get("results")


def system_label(name: str, entry: JsonDict) -> str:
    """A system's label as the bench recorded it (older results have none)."""
    label = entry.get("label") if isinstance(entry, dict) else None
    return str(label) if label else {"rollcall": OURS, ALT: ALT_LABEL}.get(name, name)


def dig(entry: JsonDict | None, *keys: str) -> Any:
    """``entry[k1][k2]...``, ``None`` where a key is missing (e.g. no FaceNet-alone figures)."""
    value: Any = entry
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def span_label(weeks: str) -> str:
    """``1-1`` -> ``week 1``; ``2-4`` -> ``weeks 2-4``; ``5+`` -> ``weeks 5+``."""
    first, _, last = weeks.partition("-")
    return f"week {first}" if first == last else f"weeks {weeks}"
