"""Docstrings as terminal text: the command-line tools and examples print their module docstring
as ``--help``; ``plain`` drops the reST markup a docstring carries, so a person reads
singa-run rather than ``singa-run``."""
import re

_LITERAL = re.compile(r"``(?=\S)(.+?)(?<=\S)``")


def plain(text):
    """``text`` with reST inline literals (double backticks) as plain text: ``x`` -> x.

    None stays None (a module without a docstring, or run with python -OO)."""
    if text is None:
        return None
    return _LITERAL.sub(r"\1", text)


__all__ = ["plain"]
