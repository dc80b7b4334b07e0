"""SINGA v0.3's ``examples`` package for an installed singa: ``from examples.datasets import mnist``.

SINGA's scripts import their data loaders from a top-level ``examples`` package that sat in SINGA's source
tree. A repository checkout of this project has one (``examples/``, with the example scripts). An installed
distribution adds only ``singa`` to site-packages (a top-level ``examples`` would collide with any other
project's), so the loaders live here as ``singa.examples.datasets.{mnist,fashion_mnist,cifar10}``, and
``import singa`` adds a fallback importer: when no other ``examples`` package is found on ``sys.path``, the
name ``examples`` (and ``examples.datasets...``) means this package. A real ``examples`` package, e.g. the
repository's, always wins.
"""
