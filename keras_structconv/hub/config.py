"""Where the hub reads and writes: the environment variables and the download policy.

- `KERAS_STRUCTCONV_HUB_CACHE`: the cache folder (default `~/.cache/keras_structconv/hub`).
- `KERAS_STRUCTCONV_HUB_URL`: base URL of a hub, a folder holding `manifest.json` and the
  archives (`structconv hub serve DIST` serves one; `file://` URLs work too). When it is set, its
  `manifest.json` replaces the manifest shipped in the package. When it is not, the packaged
  manifest is used and its relative archive URLs resolve against the repository's `zoo/dist/`
  folder when the package runs from a source checkout.
- `KERAS_STRUCTCONV_HUB_OFFLINE=1`: no network; models and the manifest come from the cache.
- `KERAS_STRUCTCONV_HUB_TIMEOUT`: seconds a connection or a read may stall (default 60).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

CACHE_ENV = "KERAS_STRUCTCONV_HUB_CACHE"
URL_ENV = "KERAS_STRUCTCONV_HUB_URL"
OFFLINE_ENV = "KERAS_STRUCTCONV_HUB_OFFLINE"
TIMEOUT_ENV = "KERAS_STRUCTCONV_HUB_TIMEOUT"

DEFAULT_CACHE_DIR = Path("~/.cache/keras_structconv/hub")
DEFAULT_TIMEOUT = 60.0
PACKAGED_MANIFEST = Path(__file__).with_name("manifest.json")
# The repository root when the package is imported from a source checkout (not from site-packages).
_CHECKOUT_ROOT = Path(__file__).resolve().parents[2]

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


@dataclasses.dataclass(frozen=True)
class DownloadPolicy:
    """How patient a download is.

    Args:
        connect_timeout: seconds to wait for the TCP (and TLS) connection.
        read_timeout: seconds a read may stall before the attempt counts as failed.
        retries: attempts after the first on connection errors, timeouts, cut bodies and HTTP
            5xx (never on 4xx).
        backoff: seconds before the first retry, doubled before each next one.

    Example:

    ```python
    policy = DownloadPolicy(read_timeout=10.0, retries=2)
    model = keras_structconv.hub.load("keras_structconv/cifar_resnet20/1", policy=policy)
    ```
    """

    connect_timeout: float = DEFAULT_TIMEOUT
    read_timeout: float = DEFAULT_TIMEOUT
    retries: int = 4
    backoff: float = 1.0

    def __post_init__(self):
        for name in ("connect_timeout", "read_timeout", "backoff"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ValueError(
                    f"`{name}` must be a non-negative number of seconds. Received: {name}={value!r}"
                )
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 0:
            raise ValueError(
                f"`retries` must be a non-negative integer. Received: retries={self.retries!r}"
            )

    def delay_before_retry(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based)."""
        return self.backoff * 2 ** (retry - 1)


def default_policy() -> DownloadPolicy:
    """The policy with both timeouts from `KERAS_STRUCTCONV_HUB_TIMEOUT` when it is set."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DownloadPolicy()
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(
            f"{TIMEOUT_ENV} must be a positive number of seconds. Received: {TIMEOUT_ENV}={text!r}"
        )
    return DownloadPolicy(connect_timeout=seconds, read_timeout=seconds)


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The cache folder: `override`, else `$KERAS_STRUCTCONV_HUB_CACHE`, else the default."""
    chosen = override if override is not None else os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR
    return Path(chosen).expanduser().resolve()


def offline() -> bool:
    """True when `KERAS_STRUCTCONV_HUB_OFFLINE` is set to 1 / true / yes / on."""
    text = os.environ.get(OFFLINE_ENV, "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(
        f"{OFFLINE_ENV} must be 1 or 0 (true/false, yes/no, on/off). "
        f"Received: {OFFLINE_ENV}={text!r}"
    )


def hub_url() -> str | None:
    """`$KERAS_STRUCTCONV_HUB_URL` with a trailing slash, or None when unset."""
    url = os.environ.get(URL_ENV, "").strip()
    if not url:
        return None
    return url if url.endswith("/") else url + "/"


def checkout_dist_dir() -> Path | None:
    """The repository's `zoo/dist/` when the package runs from a source checkout, else None.

    A checkout is recognised by `setup.py` and `zoo/` beside the package folder; the `dist/`
    folder itself may not exist yet (nothing published)."""
    root = _CHECKOUT_ROOT
    if (root / "setup.py").is_file() and (root / "zoo").is_dir():
        return root / "zoo" / "dist"
    return None
