"""Rollcall side by side with face_recognition (dlib): one command, every figure measured.

``uv run --group bench python -m bench`` runs every section and writes ``docs/benchmarks.json``
(the measurements) and ``docs/benchmarks.md`` (rendered from that JSON only). ``--sections`` runs
some sections and merges them into the existing JSON, so e.g. the speed section can be re-measured
on a quiet machine without redoing LFW: ``uv run --group bench python -m bench --sections speed``.
``--quick`` is a CI-sized check (a few minutes) that writes to ``bench/results/`` instead.

Sections: verification (LFW View-2), oneshot (one photo per identity, open set), term (a simulated
term that learns from confirmed faces), service-term (a smaller term through the real service:
uploads, teacher corrections, samples), groups (detection
and attendance on the group photos), speed (per-stage latency, throughput, HTTP service), scale
(matching cost up to 100k stored embeddings). Per-image embeddings of every system are cached in
``.bench-cache/`` (``--fresh`` ignores it).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import (
    CACHE_DIR,
    REPO_DIR,
    SHARED_DIR,
    BenchContext,
    CpuSnapshot,
    JsonDict,
    load_average,
    machine_info,
    now_iso,
)
from bench.render import render_markdown

logger = logging.getLogger(__name__)

SECTIONS = (
    "verification",
    "oneshot",
    "school",
    "term",
    "service-term",
    "groups",
    "scale",
    "speed",
)
"""Run order: speed last, after the heavy accuracy work, so it disturbs nothing else."""
DEFAULT_OUT = REPO_DIR / "docs"
QUICK_OUT = REPO_DIR / "bench" / "results"


def parse_sections(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown section(s) {unknown}; choose from {SECTIONS}")
    return [s for s in SECTIONS if s in names]


def merge_results(existing: JsonDict, sections: JsonDict, machine: JsonDict) -> JsonDict:
    """``existing`` with the sections just run replaced; each section keeps its own machine/date."""
    merged: JsonDict = {
        "schema": 1,
        "generated": now_iso(),
        "machine": machine,
        "sections": dict(existing.get("sections", {})),
    }
    for name, section in sections.items():
        old = merged["sections"].get(name)
        if not isinstance(old, dict) or not isinstance(old.get("results"), dict):
            continue
        # A section keeps a summary of the run it replaces, so the document shows the new
        # figures beside the old ones (docs/benchmarks.md, "Before and after"); a section run
        # again on the same day keeps the summary it had (the figures before that day's work).
        same_day = str(old.get("date", ""))[:10] == str(section.get("date", "x"))[:10]
        if same_day and old.get("previous"):
            summary = old["previous"]
        else:
            summary = section_summary(name, old)
        if summary is not None:
            sections[name] = {**section, "previous": summary}
    merged["sections"].update(sections)
    return merged


def section_summary(name: str, section: JsonDict) -> JsonDict | None:
    """The headline figures of a section that a later run is compared with."""
    results = section["results"]
    head = {
        "date": section.get("date"),
        "git_commit": section.get("machine", {}).get("git_commit"),
    }
    if name == "speed":
        return speed_summary(section) if "stages" in results else None
    if name == "verification":
        ours = results.get("systems", {}).get("rollcall", {})
        return {**head, "accuracy": ours.get("fallback", {}).get("accuracy")}
    if name == "oneshot":
        ours = results.get("systems", {}).get("rollcall", {})
        return {
            **head,
            "methods": {
                key: {
                    "label": method.get("label"),
                    "default_threshold": method.get("default_threshold"),
                    "at_default": method.get("at_default"),
                }
                for key, method in ours.get("methods", {}).items()
            },
            "false_accept_by_class_size": ours.get("false_accept_by_class_size"),
        }
    if name == "groups":
        systems = results.get("attendance", {}).get("systems", {})
        return {
            **head,
            "attendance": {
                key: {
                    "default_threshold": system.get("default_threshold"),
                    "totals": system.get("methods", {}).get("stage1", {}).get("totals"),
                }
                for key, system in systems.items()
                if "stage1" in system.get("methods", {})
            },
        }
    if name == "term":
        return {
            **head,
            "scenarios": {
                key: {
                    policy: values.get("totals")
                    for policy, values in scenario.get("policies", {}).items()
                }
                for key, scenario in results.get("scenarios", {}).items()
            },
        }
    return None


def speed_summary(section: JsonDict) -> JsonDict:
    """The figures of a speed section that a later run is compared with: per photo the end-to-end
    medians, the embedding passes per second, the service's memory."""
    results = section["results"]
    photos = {
        label: {
            system: {
                "faces": entry[system]["faces"],
                "end_to_end_ms": entry[system]["end_to_end_ms"],
            }
            for system in ("rollcall", "rollcall_facenet", "face_recognition")
            if system in entry
        }
        for label, entry in results["stages"]["photos"].items()
    }
    http = results.get("http", {})
    return {
        "date": section.get("date"),
        "git_commit": section.get("machine", {}).get("git_commit"),
        "cpu_used_by_other_processes": section.get("cpu_used_by_other_processes"),
        "photos": photos,
        "embedding": results.get("embedding", {}).get("rows", []),
        "rss_idle_bytes": http.get("rss_idle_bytes"),
        "rss_peak_bytes": http.get("rss_peak_bytes"),
    }


def write_outputs(data: JsonDict, out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{stem}.json"
    md_path = out_dir / f"{stem}.md"
    for path, text in (
        (json_path, json.dumps(data, indent=1, sort_keys=False) + "\n"),
        (md_path, render_markdown(data)),
    ):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return json_path, md_path


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="CI-sized subsets (a few minutes)")
    parser.add_argument(
        "--sections",
        type=parse_sections,
        default=list(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=None,
        help=f"where benchmarks.json/.md go (default {DEFAULT_OUT.relative_to(REPO_DIR)}; "
        f"with --quick {QUICK_OUT.relative_to(REPO_DIR)})",
    )
    parser.add_argument("--shared", type=Path, default=SHARED_DIR, help="the shared data folder")
    parser.add_argument("--fresh", action="store_true", help="ignore and do not write the cache")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--render-only", action="store_true", help="re-render the markdown from the JSON"
    )
    args = parser.parse_args(arguments)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    out_dir: Path = args.out_dir or (QUICK_OUT if args.quick else DEFAULT_OUT)
    stem = "benchmarks"
    json_path = out_dir / f"{stem}.json"
    existing: JsonDict = {}
    if json_path.is_file():
        existing = json.loads(json_path.read_text(encoding="utf-8"))
    if args.render_only:
        if not existing:
            logger.error("no %s to render", json_path)
            return 2
        write_outputs(existing, out_dir, stem)
        return 0
    if not (args.shared / "faces").is_dir():
        logger.error("shared data not found at %s (--shared or ROLLCALL_SHARED_DIR)", args.shared)
        return 2

    ctx = BenchContext(
        shared_dir=args.shared,
        cache_dir=None if args.fresh else CACHE_DIR,
        quick=args.quick,
        seed=args.seed,
    )
    command = "uv run --group bench python -m bench" + (
        " " + " ".join(arguments) if arguments else ""
    )
    machine = machine_info()
    results: JsonDict = {}
    for name in args.sections:
        logger.info("=== section %s ===", name)
        module = importlib.import_module(f"bench.{name.replace('-', '_')}")
        load_before = load_average()
        cpu_before = CpuSnapshot.now()
        started = time.perf_counter()
        date = now_iso()
        section = module.run(ctx)
        results[name] = {
            "date": date,
            "command": command,
            "quick": args.quick,
            "seconds": round(time.perf_counter() - started, 1),
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "cpu_used_by_other_processes": round(cpu_before.other_share(CpuSnapshot.now()), 3),
            "machine": machine,
            "results": section,
        }
        # Written after every section: a later failure keeps what was measured.
        existing = merge_results(existing, {name: results[name]}, machine)
        paths = write_outputs(existing, out_dir, stem)
        logger.info("section %s done in %.0fs -> %s", name, results[name]["seconds"], paths[0])
    sys.stdout.write(f"wrote {json_path} and {out_dir / (stem + '.md')}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
