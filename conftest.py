"""Hooks for every test in the repository."""

from __future__ import annotations

_TAIL_LINES = 40  # of each first failure: enough for the assertion and its frame


def pytest_terminal_summary(terminalreporter) -> None:
    """A test that failed and then passed on its rerun (`--reruns`) is only named in the
    summary; print how its first try failed, so a flaky test in CI shows its cause."""
    reruns = terminalreporter.stats.get("rerun", [])
    if not reruns:
        return
    terminalreporter.section("first failures of rerun tests")
    for report in reruns:
        lines = report.longreprtext.splitlines()
        terminalreporter.write_line(f"--- {report.nodeid} ({report.when})")
        for line in lines[-_TAIL_LINES:]:
            terminalreporter.write_line(line)
