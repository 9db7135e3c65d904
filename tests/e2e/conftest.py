"""The product as processes, started once per test module: tests that share one server keep the suite
short, and each makes its own names (emails, journey keys) so they do not see each other's data."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.testing.apps import TEST_BOOTSTRAP_KEY
from shared.testing.processes import CrmProcess, free_port
from tests.conftest import Launcher, launching


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`crm dev` for the module's tests: its root URL (each service under `/<service>`)."""
    folder = tmp_path_factory.mktemp("embedded")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with CrmProcess(
        ["dev", "--port", str(port), "--data-dir", str(folder / "var")],
        env={"CRM_BOOTSTRAP_API_KEY": TEST_BOOTSTRAP_KEY},
        log_path=folder / "dev.log",
        health_url=f"{base}/healthz",
    ):
        yield base


@pytest.fixture(scope="module")
def launch_for_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    """`launch` for the module's tests: the processes it starts serve every test of the module."""
    with launching(tmp_path_factory.mktemp("distributed")) as start:
        yield start
