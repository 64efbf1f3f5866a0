"""Fault suite fixtures: a migrated template database per session, a Site and emulator per test."""

import pytest

from curation.emulator import Emulator
from tests.faults.site import Site, Template


@pytest.fixture(scope="session")
def fault_template(tmp_path_factory):
    template = Template(tmp_path_factory.mktemp("fault-template"))
    yield template
    template.close()


@pytest.fixture
def fault_emulator():
    emu = Emulator(host="127.0.0.1", port=0, latency=0, batch_seconds=0, cancel_seconds=0,
                   retry_after=0.05).start()
    yield emu
    emu.stop()


@pytest.fixture
def site(fault_template, fault_emulator, tmp_path):
    """A fresh deployment; workers started by the test are always stopped, the DB dropped."""
    made = []

    def build(**env) -> Site:
        s = Site(template=fault_template, workdir=tmp_path, emulator=fault_emulator, **env)
        made.append(s)
        return s

    yield build
    for s in made:
        s.close()
