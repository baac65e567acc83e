"""Errors raised by convoyrisk.

Every error a user can cause by what they pass in is a :class:`ConvoyRiskError`.
The command line prints its message on one line and exits with code 2, so each
message says what is wrong, where, and what to do about it.
"""

from __future__ import annotations


class ConvoyRiskError(Exception):
    """Base class of the errors that bad input or settings can cause."""


class InputError(ConvoyRiskError, ValueError):
    """An input file or value is malformed or unusable."""


class MissingInputError(ConvoyRiskError, FileNotFoundError):
    """An input file does not exist."""


class PlaceNotFoundError(ConvoyRiskError, LookupError):
    """A place name is not in the gazetteer."""


class NoRouteError(ConvoyRiskError):
    """No route joins the two places on the network."""


class FetchError(ConvoyRiskError):
    """Downloading from a data source failed: a credential, the network or the server."""


class ConvoyRiskWarning(UserWarning):
    """Something in the input was left out or changed; the run goes on (one line, said once)."""
