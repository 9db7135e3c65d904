"""The report: Markdown for people, JSON for tools, both written to the output folder."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from services.bench.model import Figure, ModeReport
from services.bench.scenarios.base import BenchSettings, Scenario

_HEADER = "| scenario | figure | value | baseline | ratio | target | result |"
_RULE = "|---|---|--:|--:|--:|---|---|"


@dataclass(frozen=True)
class Report:
    started_at: datetime
    finished_at: datetime
    commit: str | None
    machine: dict[str, str | int | float]
    settings: BenchSettings
    scenarios: list[Scenario]
    modes: list[ModeReport]

    @property
    def errors(self) -> int:
        return sum(1 for mode in self.modes for figure in mode.figures if figure.verdict == "ERROR")


def _number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _quantity(value: float | None, unit: str) -> str:
    return "—" if value is None else f"{_number(value)} {unit}".strip()


def _row(figure: Figure) -> str:
    ratio = "—" if figure.ratio is None else f"{figure.ratio:.2f}"
    target = figure.target.describe(figure.unit) if figure.target else "—"
    verdict = {"MISSED": "**MISSED**", "ERROR": "**ERROR**"}.get(figure.verdict, figure.verdict)
    cells = [
        figure.scenario,
        figure.name,
        _quantity(figure.value, figure.unit),
        _quantity(figure.baseline, figure.unit),
        ratio,
        target,
        verdict,
    ]
    return "| " + " | ".join(cells) + " |"


def mode_table(mode: ModeReport) -> str:
    if mode.skipped:
        return f"**{mode.mode}: skipped.** {mode.skipped}"
    lines = [_HEADER, _RULE, *(_row(figure) for figure in mode.figures)]
    notes = [f"- {figure.scenario} {figure.name}: {figure.note}" for figure in mode.figures if figure.note]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)


def summary(report: Report) -> str:
    """The result tables, one per mode: what the command prints at the end."""
    return "\n\n".join(f"### {mode.mode}\n\n{mode_table(mode)}" for mode in report.modes)


def _details(mode: ModeReport) -> list[str]:
    lines = []
    for figure in mode.figures:
        if figure.details:
            pairs = ", ".join(f"{key}={value}" for key, value in figure.details.items())
            lines.append(f"- {figure.scenario} {figure.name}: {pairs}")
    return lines


def to_markdown(report: Report) -> str:
    machine = report.machine
    settings = report.settings
    took = int((report.finished_at - report.started_at).total_seconds())
    lines = [
        "# crm benchmark",
        "",
        f"- date: {report.started_at:%Y-%m-%d %H:%M:%S %Z} (took {took // 60} min {took % 60} s)",
        f"- commit: {report.commit or 'unknown'}",
        f"- machine: {machine['cores']} cores ({machine['cpu']}), {machine['ram_gib']} GiB RAM, "
        f"{machine['os']}, Python {machine['python']}",
        f"- settings: {settings.duration_s:g} s per measured load phase after {settings.warmup_s:g} s of "
        f"warm-up; {settings.events} events for the consumer and relay scenarios; wrk 1 thread, "
        f"{settings.connections} connections",
        "",
        "Ratio is figure ÷ baseline, both measured in this run. Throughput targets are ratios; latency "
        "and memory targets are absolute, and their ratio is only for reading, unless the target names "
        "a ratio (search latency at the largest size ÷ at the smallest). MISSED means the target was "
        "not met; ERROR that the figure could not be measured (see the notes).",
        "",
        "## Results",
        "",
        summary(report),
        "",
        "## What each scenario measures",
        "",
        *(f"- **{scenario.name}** ({scenario.title}): {scenario.measures}" for scenario in report.scenarios),
    ]
    details = [(mode, _details(mode)) for mode in report.modes]
    if any(lines_ for _, lines_ in details):
        lines += ["", "## Details"]
        for mode, mode_lines in details:
            if mode_lines:
                lines += ["", f"### {mode.mode}", "", *mode_lines]
    return "\n".join(lines) + "\n"


def _figure_json(figure: Figure) -> dict[str, Any]:
    return {
        "scenario": figure.scenario,
        "figure": figure.name,
        "unit": figure.unit,
        "value": figure.value,
        "baseline": figure.baseline,
        "ratio": figure.ratio,
        "target": (
            {
                "kind": figure.target.kind,
                "threshold": figure.target.threshold,
                "text": figure.target.describe(figure.unit),
            }
            if figure.target
            else None
        ),
        "result": figure.verdict,
        "details": figure.details,
        "note": figure.note,
    }


def to_json(report: Report) -> dict[str, Any]:
    return {
        "date": report.started_at.isoformat(),
        "finished": report.finished_at.isoformat(),
        "commit": report.commit,
        "machine": report.machine,
        "settings": dataclasses.asdict(report.settings),
        "scenarios": [{"name": s.name, "title": s.title, "measures": s.measures} for s in report.scenarios],
        "modes": [
            {
                "mode": mode.mode,
                "skipped": mode.skipped or None,
                "figures": [_figure_json(figure) for figure in mode.figures],
            }
            for mode in report.modes
        ],
    }


def write(report: Report, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown, data = out_dir / "report.md", out_dir / "report.json"
    markdown.write_text(to_markdown(report))
    data.write_text(json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n")
    return markdown, data
