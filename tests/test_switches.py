# covers: singa/switches.py
"""singa.switches: every SINGA_* name the project reads is in its one table, README shows that table, and each
kind of switch refuses what it cannot take."""
import os
import re
import subprocess

import pytest

from singa import switches
from singa.errors import ConfigError
from tests.conftest import ROOT

# Names that look like switches but are not read from the environment by singa.
NOT_SWITCHES = {"SINGA_HOME"}     # SINGA v0.3's own launcher variable, mentioned in docs only


def _sources():
    out = subprocess.run(["git", "ls-files", "singa", "tests", "examples", "benchmarks", "run.sh", ".ci"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    out += ["singa/switches.py"]
    for rel in sorted(set(out)):
        if rel == "tests/test_switches.py":
            continue                     # names unknown switches on purpose
        if rel.endswith((".py", ".sh")) or rel in ("run.sh", ".ci/run"):
            with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
                yield rel, f.read()


def test_every_singa_name_in_the_source_is_in_the_table():
    found = {}
    for rel, text in _sources():
        for name in re.findall(r"\bSINGA_[A-Z0-9_]*[A-Z0-9]\b", text):
            found.setdefault(name, set()).add(rel)
    missing = {n: where for n, where in found.items() if n not in switches.BY_NAME and n not in NOT_SWITCHES}
    assert not missing, "SINGA_* names read but not in singa.switches.TABLE: %s" % missing
    unused = set(switches.BY_NAME) - set(n for n, rels in found.items() if rels - {"singa/switches.py"})
    assert not unused, "switches in the table that nothing reads: %s" % unused


def test_each_switch_names_a_real_reader_that_mentions_it():
    for s in switches.TABLE:
        for rel in s.reader.split(", "):
            with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
                assert s.name in f.read(), "%s says %s reads it" % (s.name, rel)


def test_readme_shows_the_table():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert switches.markdown() in readme, "README's switch table is out of date: paste singa.switches.markdown()"


def test_kinds_parse_and_refuse():
    with switches.using(SINGA_CONV_SPLIT="1", SINGA_REPLICAS="3", SINGA_CACHE="~/x"):
        assert switches.flag("SINGA_CONV_SPLIT") is True
        assert switches.integer("SINGA_REPLICAS") == 3
        assert switches.path("SINGA_CACHE") == os.path.expanduser("~/x")
    with switches.using(SINGA_CONV_SPLIT=None, SINGA_REPLICAS=None):
        assert switches.flag("SINGA_CONV_SPLIT") is False and switches.integer("SINGA_REPLICAS") is None
    with switches.using(SINGA_CONV_SPLIT="maybe"):
        with pytest.raises(ConfigError, match=r"Invalid value for `SINGA_CONV_SPLIT`. Expected 0 or 1. "
                                              r"Received: 'maybe'\nhelp: unset it for the default \(off\)"):
            switches.flag("SINGA_CONV_SPLIT")
    for bad in ("0", "two", "-1"):
        with switches.using(SINGA_REPLICAS=bad):
            with pytest.raises(ConfigError, match="SINGA_REPLICAS.*an integer >= 1"):
                switches.integer("SINGA_REPLICAS")


def test_using_restores_the_environment():
    os.environ.pop("SINGA_REPLICAS", None)
    os.environ["SINGA_UPDATER_THREADS"] = "2"
    try:
        with pytest.raises(RuntimeError):
            with switches.using(SINGA_REPLICAS="4", SINGA_UPDATER_THREADS=None):
                assert os.environ["SINGA_REPLICAS"] == "4" and "SINGA_UPDATER_THREADS" not in os.environ
                raise RuntimeError
        assert "SINGA_REPLICAS" not in os.environ and os.environ["SINGA_UPDATER_THREADS"] == "2"
    finally:
        os.environ.pop("SINGA_UPDATER_THREADS", None)


def test_unknown_switch_names_are_refused():
    with pytest.raises(KeyError, match="SINGA_REPLICA is not a switch"):
        switches.raw("SINGA_REPLICA")
    with pytest.raises(KeyError):
        with switches.using(SINGA_NOPE="1"):
            pass
