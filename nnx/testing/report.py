"""What a check is and what it reports: `Check` (one check of one component), `Failure` (what failed, and the fix),
`CheckFailed` (every failure at once) and `CheckSkipped` (a check that cannot run here, with the reason)."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

KIT = Path(__file__).resolve().parent  # frames in here are the kit's own, not the component's


@dataclass(frozen=True)
class Failure:
    """One failed check of one component.

    Attributes:
        check: The check's name, e.g. "gradients".
        component: The component as its repr shows it, e.g. "LeakyReLU(0.3)", or the backend's name.
        problem: What is wrong, in one sentence.
        fix: What to do about it, in one sentence.
    """

    check: str
    component: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.component} failed check {self.check!r}: {self.problem.rstrip('.')}. Fix: {self.fix}"


class CheckFailed(AssertionError):
    """One or more checks failed; the message lists each one with its component, its problem and its fix.

    Attributes:
        failures: The `Failure` of each failed check, in the order they ran.
    """

    def __init__(self, failures: Sequence[Failure]) -> None:
        self.failures = list(failures)
        names = ", ".join(failure.check for failure in self.failures)
        lines = "\n".join(f"- {failure}" for failure in self.failures)
        super().__init__(f"{len(self.failures)} check(s) failed ({names}):\n{lines}")


class CheckSkipped(Exception):
    """A check that cannot run here (a class defined in `__main__`, a backend without a compiled step, ...); the
    message says why."""


class Unmet(Exception):
    """Raised inside a check: the component does not do what the check expects (the problem, then the fix)."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


@dataclass(frozen=True)
class Check:
    """One check of one component, run by calling it.

    Attributes:
        name: The check's name, e.g. "gradients" or "save_load".
        component: The component it checks, as its repr shows it (a backend: its name).
        run: The check itself: a callable without arguments that returns when the check passes.
        fix: The fix to suggest when the component raises an unexpected error during the check.
        on_skip: Called with the reason instead of raising `CheckSkipped` (pytest's `skip`, say); None raises.
    """

    name: str
    component: str
    run: Callable[[], None] = field(repr=False)
    fix: str = field(repr=False, default="make the component work as the check's message describes")
    on_skip: Callable[[str], object] | None = field(repr=False, default=None)

    @property
    def id(self) -> str:
        """The check's test id: component and check, e.g. "LeakyReLU(0.3)-gradients"."""
        return f"{self.component}-{self.name}"

    def __call__(self) -> None:
        """Run the check.

        Raises:
            CheckFailed: the component failed it; the message names the component, the problem and the fix.
            CheckSkipped: it cannot run here (unless `on_skip` is set, which is then called with the reason).
        """
        try:
            self.run()
        except Unmet as unmet:
            raise CheckFailed([Failure(self.name, self.component, unmet.problem, unmet.fix)]) from None
        except CheckSkipped as skipped:
            if self.on_skip is None:
                raise
            self.on_skip(f"{self.id}: {skipped}")
        except (CheckFailed, KeyboardInterrupt):
            raise
        except Exception as error:
            problem = f"it raised {type(error).__name__}: {error}{where(error)}"
            raise CheckFailed([Failure(self.name, self.component, problem, self.fix)]) from error


def where(error: BaseException) -> str:
    """' (in function, file.py line N)' for the innermost frame of `error` outside this kit, or ''."""
    frames = [
        frame for frame in traceback.extract_tb(error.__traceback__) if Path(frame.filename).resolve().parent != KIT
    ]
    if not frames:
        return ""
    frame = frames[-1]
    return f" (in {frame.name}, {Path(frame.filename).name} line {frame.lineno})"


def run_checks(checks: Iterable[Check]) -> dict[str, str]:
    """Run every check; {name: "passed" or "skipped: reason"}, or one CheckFailed listing every failure."""
    outcomes: dict[str, str] = {}
    failures: list[Failure] = []
    for check in checks:
        try:
            check()
        except CheckSkipped as skipped:
            outcomes[check.name] = f"skipped: {skipped}"
        except CheckFailed as failed:
            outcomes[check.name] = "failed"
            failures += failed.failures
        else:
            outcomes[check.name] = "passed"
    if failures:
        raise CheckFailed(failures)
    return outcomes
