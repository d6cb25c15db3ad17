"""Reading the JPEG-in-npz dataset format: locate the folder, validate the archive, decode once.

Format (see `shared/data/README.md`): an `.npz` holding
- `jpeg_bytes` uint8 (total,): all JPEG files concatenated,
- `jpeg_offsets` int (N + 1,): image i is `jpeg_bytes[jpeg_offsets[i]:jpeg_offsets[i + 1]]`,
- per-image arrays such as `labels` (N, ...).

The embedded CIFAR-10 sample stores two such sets in one file, with key prefixes `train_` and
`test_`; `prefix` selects one.

Decoding uses `tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")`: that is libjpeg's default
("islow") inverse DCT, so pixels are identical to PIL's. TensorFlow's default method is a faster
approximation that differs from PIL by up to 5 levels on most pixels.
"""

import os
import zipfile
from pathlib import Path

import numpy as np
import tensorflow as tf

DATA_ENV_VAR = "KERAS_STRUCTCONV_DATA"

# <repo>/../shared/data: the project's layout; absent for an installed package, then unused.
_DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data"

_DECODE_BATCH = 1024

# Decoded archives of this process: {(path, mtime_ns, size, prefix, keys): (images, arrays)}.
_CACHE = {}


def resolve_data_dir(dataset, data_dir, required_files, title):
    """The folder holding `dataset`'s npz files, or a FileNotFoundError saying how to set it.

    Order: `data_dir` when given, else `$KERAS_STRUCTCONV_DATA/<dataset>`, else
    `<repo>/../shared/data/<dataset>`.
    """
    env_root = os.environ.get(DATA_ENV_VAR)
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
    elif env_root:
        folder = Path(env_root).expanduser() / dataset
    else:
        folder = _DEFAULT_DATA_ROOT / dataset
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{title} data folder not found: {str(folder)!r}. Pass `data_dir=` the folder "
            f"holding {', '.join(required_files)}, or set the environment variable {DATA_ENV_VAR} "
            f"to the folder that contains {dataset}/ (format: shared/data/README.md). "
            f"Received: data_dir={data_dir!r}, {DATA_ENV_VAR}={env_root!r}"
        )
    return folder


def split_file(folder, dataset, split, title):
    """`folder/<split>.npz`, or a FileNotFoundError naming it."""
    path = Path(folder) / f"{split}.npz"
    if not path.is_file():
        present = sorted(p.name for p in Path(folder).glob("*.npz"))
        hint = ""
        if (Path(folder) / dataset / path.name).is_file():
            hint = f" Did you mean data_dir={str(Path(folder) / dataset)!r}?"
        raise FileNotFoundError(
            f"{title} file {str(path)!r} not found (the folder holds "
            f"{present or 'no .npz'}).{hint} "
            f"Received: split={split!r}, data_dir={str(folder)!r}"
        )
    return path


def load_jpeg_archive(path, keys=("labels",), extra_keys=(), prefix="", postprocess=None):
    """Decoded images and the arrays `keys` + `extra_keys` of one archive, cached per process.

    `keys` name per-image arrays (N rows each), `extra_keys` anything else (e.g. class names).
    `postprocess(path, images, arrays) -> (images, arrays)` checks/converts the result once,
    before it is cached. Returns `(images, arrays)`: `images` uint8 (N, H, W, 3), `arrays` a dict
    {key: array} with the prefix removed from the keys. All arrays are read-only (shared by
    every caller); copy them to modify in place. Raises ValueError naming the file when it is
    corrupt.
    """
    path = Path(path)
    stat = path.stat()
    cache_key = (
        str(path.resolve()), stat.st_mtime_ns, stat.st_size, prefix, tuple(keys),
        tuple(extra_keys), postprocess,
    )
    if cache_key not in _CACHE:
        jpeg_bytes, offsets, arrays = read_jpeg_archive(path, keys, extra_keys, prefix)
        images = decode_jpegs(jpeg_bytes, offsets, path)
        if postprocess is not None:
            images, arrays = postprocess(path, images, arrays)
        images.setflags(write=False)
        for value in arrays.values():
            value.setflags(write=False)
        _CACHE[cache_key] = (images, arrays)
    return _CACHE[cache_key]


def read_jpeg_archive(path, keys=("labels",), extra_keys=(), prefix=""):
    """`(jpeg_bytes, offsets, {key: array})` of an archive, checked for consistency.

    Raises ValueError naming the file when it is not a readable npz (e.g. truncated), lacks a
    key, or its offsets do not index `jpeg_bytes` image by image.
    """
    names = ["jpeg_bytes", "jpeg_offsets", *keys, *extra_keys]
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        reason = f"not a readable npz archive ({type(error).__name__}: {error})"
        raise _corrupt(path, reason) from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise _corrupt(path, "it is a single .npy array, not an .npz archive")
    with archive:
        missing = [prefix + name for name in names if prefix + name not in archive.files]
        if missing:
            raise _corrupt(path, f"missing keys {missing}; it holds {sorted(archive.files)}")
        try:
            loaded = {name: archive[prefix + name] for name in names}
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
            # A truncated or damaged member (bad CRC, short read) fails only when it is read.
            raise _corrupt(
                path, f"cannot read its arrays ({type(error).__name__}: {error})"
            ) from error
    jpeg_bytes = loaded.pop("jpeg_bytes")
    offsets = loaded.pop("jpeg_offsets")
    _check_offsets(path, prefix, jpeg_bytes, offsets)
    count = offsets.size - 1
    for name in keys:
        value = loaded[name]
        if value.ndim == 0 or value.shape[0] != count:
            raise _corrupt(
                path, f"`{prefix}{name}` has shape {value.shape}, expected {count} rows "
                f"(one per image in `{prefix}jpeg_offsets`)"
            )
    return jpeg_bytes, offsets, loaded


def decode_jpegs(jpeg_bytes, offsets, path="<memory>"):
    """uint8 (N, H, W, 3) from concatenated JPEG files; ValueError naming `path` on bad data."""
    raw = jpeg_bytes.tobytes()
    files = [raw[start:stop] for start, stop in zip(offsets[:-1], offsets[1:], strict=True)]
    dataset = (
        tf.data.Dataset.from_tensor_slices(files)
        .map(_decode_rgb, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(_DECODE_BATCH)
    )
    try:
        chunks = [chunk.numpy() for chunk in dataset]
    except tf.errors.InvalidArgumentError as error:
        raise _corrupt(
            path, f"its JPEG data does not decode to images of one size ({error.message})"
        ) from error
    shapes = {chunk.shape[1:] for chunk in chunks}
    if len(shapes) != 1:
        raise _corrupt(path, f"its images have different sizes: {sorted(shapes)}")
    return np.concatenate(chunks)


def _decode_rgb(data):
    return tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")


def _check_offsets(path, prefix, jpeg_bytes, offsets):
    name = f"`{prefix}jpeg_offsets`"
    if jpeg_bytes.dtype != np.uint8 or jpeg_bytes.ndim != 1:
        raise _corrupt(
            path, f"`{prefix}jpeg_bytes` must be 1-D uint8, got {jpeg_bytes.dtype} "
            f"{jpeg_bytes.shape}"
        )
    if not np.issubdtype(offsets.dtype, np.integer) or offsets.ndim != 1 or offsets.size < 2:
        raise _corrupt(path, f"{name} must be 1-D integers with N + 1 >= 2 entries, got "
                       f"{offsets.dtype} {offsets.shape}")
    if offsets[0] != 0 or offsets[-1] != jpeg_bytes.size:
        raise _corrupt(
            path, f"{name} must start at 0 and end at len(jpeg_bytes)={jpeg_bytes.size}, "
            f"got {int(offsets[0])} .. {int(offsets[-1])}"
        )
    if np.any(np.diff(offsets) <= 0):
        raise _corrupt(path, f"{name} must be strictly increasing (one JPEG file per image)")


def _corrupt(path, reason):
    return ValueError(f"Corrupt dataset file: {reason}. Received: path={str(path)!r}")
