# covers: tests/*.py (the `# covers:` lines), singa/ (every module named by a test file)
"""Which tests to run after editing a module: every test file opens with a `# covers:` line naming
the paths it is the place to test, each named path exists, and every module of singa/ (the
generated protobuf code aside) is named by at least one test file."""
import glob
import os
import re

from tests.conftest import ROOT

TESTS = sorted(glob.glob(os.path.join(ROOT, "tests", "test_*.py")))


def covers(path):
    """The paths a test file's leading `# covers:` comment names ('' entries dropped)."""
    text = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#"):
                break
            text.append(line[1:].strip())
    joined = " ".join(text)
    if not joined.startswith("covers:"):
        return None
    # "a.py, b.py (what of them), c/ ..." -> the path-like words
    joined = re.sub(r"\([^)]*\)", "", joined[len("covers:"):])
    return [w.strip(" ,;.") for w in joined.split(",") for w in w.split() if "/" in w or w.endswith(".py")]


def test_every_test_file_says_what_it_covers():
    missing = [os.path.basename(t) for t in TESTS if not covers(t)]
    assert not missing, "test files without a leading `# covers: path, ...` line: %s" % missing


def test_named_paths_exist():
    bad = []
    for t in TESTS:
        for p in covers(t) or []:
            if not glob.glob(os.path.join(ROOT, p)) and not os.path.exists(os.path.join(ROOT, p.rstrip("/"))):
                bad.append("%s: %s" % (os.path.basename(t), p))
    assert not bad, "`# covers:` names paths that do not exist: %s" % bad


def test_every_singa_module_is_covered():
    named = set()
    for t in TESTS:
        for p in covers(t) or []:
            named.update(os.path.relpath(m, ROOT) for m in glob.glob(os.path.join(ROOT, p)))
            named.add(p.rstrip("/"))
    modules = [os.path.relpath(m, ROOT) for m in glob.glob(os.path.join(ROOT, "singa", "**", "*.py"), recursive=True)
               if not m.endswith("_pb2.py") and os.path.basename(m) != "__init__.py"]
    uncovered = [m for m in sorted(modules)
                 if m not in named and not any(m.startswith(d + "/") for d in named if not d.endswith(".py"))]
    assert not uncovered, "modules no test file names in its `# covers:` line: %s" % uncovered
