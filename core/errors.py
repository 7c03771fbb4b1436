"""The exceptions longctx raises. Every message says what is wrong and what to do about it.

The CLI prints a :class:`LongctxError` without a traceback and exits non-zero; anything else is a bug.
"""

from __future__ import annotations


class LongctxError(Exception):
    """Base class of every error a user can act on."""

    exit_code = 2


class PluginError(LongctxError):
    """A plugin failed to import or register, or broke the registration contract."""


class DuplicateTechniqueError(PluginError):
    """Two plugins registered the same technique name in one family."""


class UnknownTechniqueError(LongctxError):
    """A technique name that no loaded plugin registered; the message lists the available ones."""


class ParameterError(LongctxError):
    """A technique parameter is unknown, of the wrong type, or out of range."""


class SpecError(LongctxError):
    """A pipeline spec (CLI words or TOML) is malformed."""


class CompositionError(LongctxError):
    """The chosen components cannot be composed: a missing requirement or a conflict."""


class IncompatibleModelError(CompositionError):
    """A technique needs a model capability the model lacks (e.g. RoPE on a BERT model)."""


class ModelLoadError(LongctxError):
    """A model name or path could not be resolved or read."""


class InputError(LongctxError):
    """Bad user input to a pipeline: an empty prompt, a prompt longer than the window, …"""
