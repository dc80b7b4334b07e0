"""SINGA's ``singa.utils`` package: ``utility`` (names, setval) and ``message`` (protos, enums)."""
