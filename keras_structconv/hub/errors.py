"""The hub's exceptions: each message names the handle it concerns.

They subclass the built-in exception a caller would expect (`ValueError` for a bad handle or a bad
archive, `OSError` for a failed transfer), so `except OSError` around a download keeps working.
"""


class HubError(Exception):
    """Base class of every error raised by `keras_structconv.hub`."""


class HandleError(HubError, ValueError):
    """A handle that cannot be parsed, or that names no model of the manifest."""


class OfflineError(HubError, FileNotFoundError):
    """Offline mode (`KERAS_STRUCTCONV_HUB_OFFLINE=1`) and the model is not in the cache."""


class DownloadError(HubError, OSError):
    """A transfer that failed for good: HTTP 4xx, or retries exhausted on 5xx / timeouts."""


class ChecksumError(HubError, ValueError):
    """A downloaded archive (or a file inside it) whose sha256 differs from the expected one."""


class ArchiveError(HubError, ValueError):
    """An archive or extracted folder that is not a hub model (unreadable, files missing)."""


class UnsafeArchiveError(ArchiveError):
    """An archive member that could write outside its folder: absolute path, `..`, a link, a
    device file."""
