"""Errors that say what went wrong, what was expected, what was received and how to fix it."""


class SingaError(Exception):
    """Base class of every error singa raises on purpose."""


class ConfigError(SingaError, ValueError):
    """A value in a job configuration or an API call is not acceptable."""


class DataError(SingaError, IOError):
    """A data, record or checkpoint file is missing, empty, truncated or corrupt."""


def invalid(name, expected, received, hint=None, cls=ConfigError, where=None):
    """Build the project's standard message: Invalid value for `name` [of where]. Expected ... Received: ...

    ``where`` names the owner of ``name`` (``'fit()'``, ``'Cluster'``), as the user API says it."""
    owner = " of %s" % where if where else ""
    msg = "Invalid value for `%s`%s. Expected %s. Received: %r" % (name, owner, expected, received)
    if hint:
        msg += "\nhelp: " + hint
    return cls(msg)



class Stated(str):
    """A received value that a message states in words ("both", "an array of shape (3, 4)"): ``invalid()``
    shows it as it is, not as its repr."""

    def __repr__(self):
        return str(self)
