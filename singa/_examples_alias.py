"""The fallback importer behind ``singa.examples``: ``examples`` means ``singa.examples`` when no other
``examples`` package is on ``sys.path`` (an installed singa ships no top-level ``examples``)."""
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys

_TARGET = "singa.examples"


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, real):
        self.real = real

    def create_module(self, spec):
        return importlib.import_module(self.real)     # the one module object, under both names

    def exec_module(self, module):
        pass


class ExamplesAlias(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "examples":
            # A real package wins: ask the path finder first, so a checkout's examples/ is used.
            if importlib.machinery.PathFinder.find_spec(fullname) is not None:
                return None
        elif not fullname.startswith("examples."):
            return None
        elif getattr(sys.modules.get("examples"), "__name__", None) != _TARGET:
            return None                               # the parent is someone else's examples package
        real = _TARGET + fullname[len("examples"):]
        found = importlib.util.find_spec(real)
        if found is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(real),
                                               is_package=found.submodule_search_locations is not None)


def install():
    if not any(isinstance(f, ExamplesAlias) for f in sys.meta_path):
        sys.meta_path.insert(0, ExamplesAlias())
