"""The model hub: trained models by handle, verified downloads, a local cache, publishing.

```python
from keras_structconv import hub

model = hub.load("keras_structconv/cifar_resnet20")        # keras.Model, newest version
layer = hub.load("keras_structconv/cifar_resnet20/1", format="savedmodel")  # TFSMLayer
folder = hub.resolve("https://example.org/zoo/cifar_resnet20-1.tar.gz")
for model_info in hub.list_models():
    print(model_info["handle"], model_info["metadata"]["metrics"])
```

Handles: `keras_structconv/<model>[/<version>]` (looked up in the manifest), an `http(s)://`
URL of an archive (its sha256 from a `#sha256=<hex>` fragment or the `.sha256` file beside it), a
`file://` URL, or a local archive or extracted folder. Environment: `KERAS_STRUCTCONV_HUB_CACHE`
(cache folder, default `~/.cache/keras_structconv/hub`), `KERAS_STRUCTCONV_HUB_URL` (a hub's base
URL; its `manifest.json` replaces the packaged one), `KERAS_STRUCTCONV_HUB_OFFLINE=1` (cache
only), `KERAS_STRUCTCONV_HUB_TIMEOUT` (seconds).

Modules: `handles` (parsing), `manifest`, `download` (HTTP with retries and `Range` resume),
`extract` (safe extraction, file checks), `cache` (lock, marker, atomic rename), `archive`
(`publish`), `server` (a `Range`-capable HTTP server), `api` (`load`, `resolve`, `list_models`,
`info`). The hub knows archives, not architectures: it imports no model builder.
"""

from keras_structconv.hub.api import info, list_models, load, resolve
from keras_structconv.hub.archive import publish
from keras_structconv.hub.config import DownloadPolicy
from keras_structconv.hub.errors import (
    ArchiveError,
    ChecksumError,
    DownloadError,
    HandleError,
    HubError,
    OfflineError,
    UnsafeArchiveError,
)
from keras_structconv.hub.server import make_server

__all__ = [
    "ArchiveError",
    "ChecksumError",
    "DownloadError",
    "DownloadPolicy",
    "HandleError",
    "HubError",
    "OfflineError",
    "UnsafeArchiveError",
    "info",
    "list_models",
    "load",
    "make_server",
    "publish",
    "resolve",
]
