"""One line of ``threadkeeper check``'s report: what was found (✓), or what is wrong and its fix (✗).

Apart from the checks themselves so that the checks kept in other modules (``check_installs.py``) and the
command that runs them (``check.py``) both use it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from bots.operator.log_escape import escape_controls


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None

    def line(self) -> str:
        if self.ok:
            return escape_controls(f"✓ {self.name}: {self.detail}")  # names from servers, errors from providers
        return escape_controls(f"✗ {self.name}: {self.detail}") + (
            f"\n    fix: {escape_controls(self.fix)}" if self.fix else ""
        )


def passed(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, False, detail, fix)
