"""singa: Apache SINGA v0.x's Python API and file formats on a NumPy/CuPy engine."""
__version__ = "0.3.100"
