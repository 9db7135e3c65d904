"""What a scenario reports: a figure, the baseline it is compared with, and the target it must meet."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TargetKind = Literal["ratio_at_least", "ratio_at_most", "at_most", "below"]
Verdict = Literal["PASS", "MISSED", "ERROR", "—"]
Detail = float | int | str


@dataclass(frozen=True)
class Target:
    """`ratio_at_least` and `ratio_at_most` compare figure / baseline; `at_most` and `below` compare the
    figure itself."""

    kind: TargetKind
    threshold: float

    def describe(self, unit: str) -> str:
        if self.kind == "ratio_at_least":
            return f"ratio ≥ {self.threshold:g}"
        if self.kind == "ratio_at_most":
            return f"ratio ≤ {self.threshold:g}"
        sign = "≤" if self.kind == "at_most" else "<"
        return f"{sign} {self.threshold:g} {unit}"

    def met(self, value: float, ratio: float | None) -> bool | None:
        if self.kind == "ratio_at_least":
            return None if ratio is None else ratio >= self.threshold
        if self.kind == "ratio_at_most":
            return None if ratio is None else ratio <= self.threshold
        if self.kind == "at_most":
            return value <= self.threshold
        return value < self.threshold


@dataclass(frozen=True)
class Figure:
    """One measured quantity of a scenario. `value` is None when the scenario could not measure it."""

    scenario: str
    name: str
    unit: str
    value: float | None
    baseline: float | None = None
    target: Target | None = None
    details: dict[str, Detail] = field(default_factory=dict)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def verdict(self) -> Verdict:
        if self.value is None:
            return "ERROR"
        if self.target is None:
            return "—"
        met = self.target.met(self.value, self.ratio)
        if met is None:
            return "ERROR"
        return "PASS" if met else "MISSED"


@dataclass(frozen=True)
class ModeReport:
    """Every figure of one mode, or why the mode did not run."""

    mode: str
    figures: list[Figure] = field(default_factory=list)
    skipped: str = ""
