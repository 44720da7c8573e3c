"""Benchmarks record their figures in BENCHMARKS.md and BENCHMARKS.json at the repo root."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
COMMAND = "make bench"


def record(section: str, figures: dict[str, Any], notes: list[str]) -> None:
    """Merge ``figures`` under ``section`` in BENCHMARKS.json and rewrite BENCHMARKS.md."""
    json_path = ROOT / "BENCHMARKS.json"
    data: dict[str, Any] = json.loads(json_path.read_text()) if json_path.exists() else {}
    data[section] = {
        **figures,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": COMMAND,
        "machine": f"{platform.machine()}, python {sys.version.split()[0]}",
        "notes": notes,
    }
    json_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    lines = ["# Benchmarks", "", f"Produced by `{COMMAND}` (tests/bench/). One run each.", ""]
    for name, section_data in sorted(data.items()):
        lines += [f"## {name}", "", "| figure | value |", "|---|---|"]
        for key, value in section_data.items():
            if key not in ("notes",):
                lines.append(f"| {key} | {value} |")
        lines += [""] + [f"- {note}" for note in section_data.get("notes", [])] + [""]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines))


def note_window(t0: float, elapsed: float | None = None) -> None:
    """Write the timed window (epoch seconds) to ``$BENCH_WINDOW_FILE``, if set.

    For a CPU sampler or profiler run beside the benchmark: it attributes CPU time to
    processes over exactly the timed window. ``t0`` is a ``time.perf_counter()`` reading;
    without ``elapsed`` only the start is written (the window has just begun).
    """
    path = os.environ.get("BENCH_WINDOW_FILE")
    if path:
        start = time.time() - (time.perf_counter() - t0)
        end = "" if elapsed is None else f" {start + elapsed}"
        Path(path).write_text(f"{start}{end}\n")
