"""How a check's rules report, one result per rule: the first to fail raises `Refused`, whose
reason is the check's; a `Trail`, when one listens (`authsvc explain`), hears each rule as it
begins, with what it read, and so tells which rule failed without a rule of its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from authsvc.policy import Reason


class Begin(Protocol):
    """Told a rule's name as the rule begins, with what it read when explain shows that."""

    def __call__(self, rule: str, detail: object = None) -> None: ...


class Refused(Exception):
    """The first failing rule of a check: its reason is the verdict's. Raised on every denial
    (a flood of forged tokens raises one each), so it is kept to its reason."""

    __slots__ = ("reason",)

    def __init__(self, reason: Reason) -> None:  # no super().__init__: args are not read
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Step:
    """One rule of a check as it ran."""

    rule: str
    reason: Reason | None
    """None: the rule passed; else the reason it refused the check with."""
    detail: object = None
    """What the rule read, where explain shows it: the binding mode, a signature's label,
    parameters, covered components and base."""


def unheard(rule: str, detail: object = None) -> None:
    """What a check's rules tell when nothing listens: nothing."""


class Trail:
    """The rules of one check stage in the order they began; the last one failed if the stage
    refused the check."""

    def __init__(self) -> None:
        self._begun: list[tuple[str, object]] = []

    def begin(self, rule: str, detail: object = None) -> None:
        self._begun.append((rule, detail))

    def steps(self, outcome: Reason) -> tuple[Step, ...]:
        """Each rule's result, the stage having ended in `outcome`."""
        steps = [Step(rule, None, detail) for rule, detail in self._begun]
        if outcome is not Reason.OK and steps:
            steps[-1] = Step(steps[-1].rule, outcome, steps[-1].detail)
        return tuple(steps)
