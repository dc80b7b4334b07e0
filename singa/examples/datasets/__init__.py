"""The data loaders of SINGA's ``examples.datasets`` (see ``singa.examples``)."""
