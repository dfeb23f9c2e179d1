"""The folder of runs shared by the multi-process tests of a session (helpers/runs.py: the reference
run of each kind, the run resumed past a damaged checkpoint), each launched by the first test that
reads it."""

import pytest


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("shared_runs")
