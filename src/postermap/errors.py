"""The one error base of postermap, and the expected problems under it.

Everything postermap raises on purpose derives from :class:`PostermapError`, with a message a
person can act on (which file or setting, what to do), so the CLI and the Python API catch
one type. Anything else that escapes is a bug and propagates with its traceback.

This module imports nothing of the package: every layer may use it.
"""

from __future__ import annotations


class PostermapError(Exception):
    """An expected problem, stated so the user can fix it."""


class SettingsError(PostermapError, ValueError):
    """A setting, or a user-edited TOML file, has a value the pipeline cannot use."""


class FeaturesError(SettingsError):
    """A ``--features`` file cannot be used: wrong column types, NaN, ragged vectors, no
    ids (the message names the file and the row)."""


class SourceError(PostermapError, ValueError):
    """The source folder, manifest or metadata file cannot be used at all (as opposed to
    one bad image, which becomes that image's row status)."""


class ManifestError(SourceError):
    """A manifest of URLs cannot be read (no header, no URL column, unreadable format)."""


class DatasetError(PostermapError, RuntimeError):
    """The embedded default image set could not be fetched or is incomplete."""


class StageOrderError(PostermapError, RuntimeError):
    """A stage or command needs an artefact an earlier stage has not written yet."""


class NothingToMapError(PostermapError, ValueError):
    """The collection has too few usable images for the stage (a user error, not a bug)."""


class NotOnMapError(PostermapError, LookupError):
    """An id given by the user names no image on the map."""


class WorkspaceBusyError(PostermapError, RuntimeError):
    """Another live process is writing the workspace."""


class WorkspaceWriteError(PostermapError, OSError):
    """The workspace cannot be written (disk full, read-only file system, no permission)."""


def internal_reason(err: BaseException) -> str:
    """The ``reason`` of a row whose image hit a bug of ours (status ``error``): the
    exception's type and message, so the row says what happened and the run goes on."""
    message = " ".join(str(err).split()) or "(no message)"
    return f"internal: {type(err).__name__}: {message[:300]}"
