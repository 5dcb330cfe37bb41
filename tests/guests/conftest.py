"""Prints the guest matrix's timings at the end of a pytest run (when guests ran)."""
from tests.guests import report


def pytest_terminal_summary(terminalreporter):
    rows = report.lines()
    if not rows:
        return
    terminalreporter.write_sep("-", "guest matrix (host wall-clock seconds, TCG)")
    for row in rows:
        terminalreporter.write_line(row)
    report.save_if_asked()
