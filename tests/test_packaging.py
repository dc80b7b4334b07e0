# covers: setup.cfg, singa/examples, singa/_examples_alias.py
"""The installed distribution: only `singa` (and its console scripts) goes to site-packages, and SINGA's
`from examples.datasets import mnist` still works there, through singa.examples."""
import os
import subprocess
import sys
import sysconfig
import importlib.util
import zipfile

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The distribution pip builds from this checkout (the venv's setuptools when it has one, else pip's
    isolated build, as a fresh install does)."""
    out = tmp_path_factory.mktemp("whl")
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation, ROOT, "-w", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr + r.stdout
    (whl,) = out.iterdir()
    return whl


def _installed_python(target, code, cwd):
    """Run ``code`` with the unpacked wheel as the only singa, and no repository on sys.path (-S: no .pth,
    so the editable install of the checkout is not seen; the venv's packages come in through PYTHONPATH)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]]))
    return subprocess.run([sys.executable, "-S", "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_wheel_installs_only_singa_and_examples_import_line_works(wheel, tmp_path):
    whl = wheel
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        z.extractall(tmp_path / "site")
    tops = {n.split("/")[0] for n in names}
    assert tops == {"singa", "singa-0.3.100.dist-info"}, tops
    entry = [n for n in names if n.endswith("entry_points.txt")]
    with zipfile.ZipFile(whl) as z:
        scripts = z.read(entry[0]).decode()
    assert "singa-run = singa.__main__:main" in scripts and "singa-create-data" in scripts
    code = ("import sys; from singa.model import Sequential\n"
            "from examples.datasets import mnist, cifar10, fashion_mnist\n"
            "import singa.datasets.mnist as real\n"
            "assert mnist.load_data is real.load_data, mnist\n"
            "import examples.datasets.cifar10 as c\n"
            "assert sys.modules['examples.datasets'] is sys.modules['singa.examples.datasets']\n"
            "assert c is cifar10 is sys.modules['singa.examples.datasets.cifar10']\n"
            "print('from', mnist.__file__)\n")
    r = _installed_python(tmp_path / "site", code, cwd=tmp_path)
    assert r.returncode == 0, r.stderr + r.stdout
    assert str(tmp_path / "site" / "singa" / "examples" / "datasets") in r.stdout


def test_a_real_examples_package_wins_over_the_alias(wheel, tmp_path):
    with zipfile.ZipFile(wheel) as z:
        z.extractall(tmp_path / "site")
    own = tmp_path / "project" / "examples"
    own.mkdir(parents=True)
    (own / "__init__.py").write_text("MINE = True\n")
    r = _installed_python(tmp_path / "site", "import singa, examples; print(examples.MINE)\n"
                          "import importlib.util; print(importlib.util.find_spec('examples.datasets'))",
                          cwd=tmp_path / "project")
    # -S leaves the script's folder off sys.path for -c; the cwd ('') is on it, so the project's package is found
    assert r.returncode == 0, r.stderr + r.stdout
    assert r.stdout.split() == ["True", "None"], r.stdout


def test_the_repository_examples_package_is_used_in_a_checkout():
    r = subprocess.run([sys.executable, "-c", "import singa, examples.datasets.choose as c; print(c.__file__)"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == os.path.join(ROOT, "examples", "datasets", "choose.py")
