"""On a failure of an HA test, the paths of its processes' logs (each
start's own: a restarted replica's is `serve.1.log` beside the killed
run's `serve.log`), which pytest keeps under its temporary folder."""

from __future__ import annotations

from collections.abc import Generator

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    folder = getattr(item, "funcargs", {}).get("tmp_path")
    if report.failed and folder is not None:
        logs = sorted(str(path) for path in folder.rglob("*.log"))
        report.sections.append(("process logs", "\n".join(logs) or f"none in {folder}"))
    return report
