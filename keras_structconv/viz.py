"""Plots: TreeConv explanation maps (more plots are added here by later features).

Explanation maps (TreeConv paper §4.1, Fig. 4): for an input, the leaf ratios of a `TreeConv2D`,
`rho_0, (1-rho_0) rho_1, ..., prod_l (1-rho_l)`: which share of every pixel's feature vector goes
to each leaf of the parse tree. They sum to 1 at every pixel; the paper draws them for the last
tree convolution of a Tree-ResNet-50 over the input image.

- `tree_conv_layers(model)`: the TreeConv2D layers of a model (nested models included).
- `explanation_maps(model, images, layer=None)`: the maps of one layer (default: the last one)
  for a batch of images, computed from the layer's actual input in the model.
- `plot_explanation(image, maps)`: a matplotlib figure, the image then one panel per leaf with
  the map (upsampled to the image size, nearest) drawn over the image.
- `save_explanation_figure(model_path, image_path, output)`: what
  `structconv explain MODEL IMAGE -o out.png` runs: load a `.keras` model and an image file,
  save the figure.

Figures are built with `matplotlib.figure.Figure` (no pyplot, no global backend change), so this
works headless.

Example:

```python
model = keras_structconv.models.TreeResNet50(input_shape=(224, 224, 3))
maps, name = explanation_maps(model, images[:1])
plot_explanation(images[0], maps[0], title=name).savefig("tree.png")
```
"""

import numpy as np

from keras_structconv import _internals
from keras_structconv.layers.tree_conv import TreeConv2D

__all__ = ["save_explanation_figure", "explanation_maps", "plot_explanation", "tree_conv_layers"]


def tree_conv_layers(model):
    """The `TreeConv2D` layers of `model` in layer order, descending into nested models."""
    import keras

    found = []
    for layer in model.layers:
        if isinstance(layer, TreeConv2D):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(tree_conv_layers(layer))
    return found


def _contains(model, target):
    import keras

    return any(
        layer is target or (isinstance(layer, keras.Model) and _contains(layer, target))
        for layer in model.layers
    )


def _call_input(layer):
    """The tensor a layer was called on in its enclosing graph. For a nested model, `.input` is
    the model's own `Input`; its single inbound node holds the outer tensor it was called on."""
    import keras

    if isinstance(layer, keras.Model):
        nodes = _internals.inbound_nodes(layer)
        if len(nodes) != 1 or len(nodes[0].input_tensors) != 1:
            raise ValueError(
                f"A nested model holding the layer to explain must be called once on one "
                f"input. Received: {layer.name!r} with {len(nodes)} call(s)"
            )
        return nodes[0].input_tensors[0]
    return layer.input


def _layer_input(model, target, x):
    """The tensor `target` receives when `model` is called on `x` (`target` may sit in a nested
    model, which must be called once)."""
    import keras

    for layer in model.layers:
        if layer is target or (isinstance(layer, keras.Model) and _contains(layer, target)):
            inputs = keras.Model(model.input, _call_input(layer))(x, training=False)
            return inputs if layer is target else _layer_input(layer, target, inputs)
    raise ValueError(f"Layer {target.name!r} is not part of model {model.name!r}.")


def _find_layer(model, layer):
    layers = tree_conv_layers(model)
    if not layers:
        raise ValueError(
            f"Model {model.name!r} has no TreeConv2D layer to explain. "
            f"Received: model with layers {[lr.name for lr in model.layers][:20]}"
        )
    if layer is None:
        return layers[-1]
    if isinstance(layer, TreeConv2D):
        return layer
    by_name = {lr.name: lr for lr in layers}
    if layer not in by_name:
        raise ValueError(
            f"`layer` must name a TreeConv2D of the model, one of {sorted(by_name)}. "
            f"Received: layer={layer!r}"
        )
    return by_name[layer]


def explanation_maps(model, images, layer=None):
    """Explanation maps of one TreeConv2D of `model` for `images`.

    Args:
        model: a functional Keras model containing TreeConv2D layers.
        images: a batch the model accepts, `(batch, height, width, channels)`.
        layer: a TreeConv2D, its name, or None for the last TreeConv2D of the model.

    Returns:
        `(maps, name)`: float32 NumPy array `(batch, h, w, depth+1)` at the layer's input
        resolution, leaf order, summing to 1 over the last axis; and the layer's name.
    """
    target = _find_layer(model, layer)
    features = _layer_input(model, target, np.asarray(images, "float32"))
    maps = np.asarray(target.explain(features), "float32")
    if target.data_format == "channels_first":
        maps = np.transpose(maps, (0, 2, 3, 1))
    return maps, target.name


def _leaf_titles(count):
    titles = []
    for level in range(count):
        rest = "".join(f"(1-ρ{k})" for k in range(min(level, count - 1)))
        titles.append(rest + (f"ρ{level}" if level < count - 1 else ""))
    return titles


def _resize_nearest(maps, height, width):
    rows = (np.arange(height) * maps.shape[0]) // height
    cols = (np.arange(width) * maps.shape[1]) // width
    return maps[rows][:, cols]


def plot_explanation(image, maps, title=None, alpha=0.6, cmap="viridis"):
    """A figure: the image, then one panel per leaf with its map drawn over the image.

    Args:
        image: `(height, width, 3)` or `(height, width)` array (any range; rescaled to [0, 1]
            for display).
        maps: `(h, w, leaves)` explanation maps of that image (any resolution; upsampled to the
            image size with nearest neighbours), values in [0, 1].
        title: optional figure title (e.g. the layer name).
        alpha: opacity of the maps over the image.
        cmap: matplotlib colormap of the maps (fixed range [0, 1] so panels compare).

    Returns:
        A `matplotlib.figure.Figure`.
    """
    from matplotlib.figure import Figure

    image = np.asarray(image, "float32")
    maps = np.asarray(maps, "float32")
    if maps.ndim != 3:
        raise ValueError(
            f"`maps` must be (height, width, leaves). Received: maps.shape={maps.shape}"
        )
    low, high = float(image.min()), float(image.max())
    shown = (image - low) / (high - low) if high > low else np.zeros_like(image)
    leaves = maps.shape[-1]
    upsampled = _resize_nearest(maps, image.shape[0], image.shape[1])
    figure = Figure(figsize=(2.6 * (leaves + 1), 3.0))
    axes = figure.subplots(1, leaves + 1, squeeze=False)[0]
    axes[0].imshow(shown, cmap="gray" if shown.ndim == 2 else None)
    axes[0].set_title("input")
    for level, (axis, name) in enumerate(zip(axes[1:], _leaf_titles(leaves), strict=True)):
        axis.imshow(shown, cmap="gray" if shown.ndim == 2 else None)
        drawn = axis.imshow(upsampled[..., level], cmap=cmap, vmin=0.0, vmax=1.0, alpha=alpha)
        axis.set_title(f"leaf {level}: {name}", fontsize=9)
    for axis in axes:
        axis.set_axis_off()
    figure.colorbar(drawn, ax=list(axes[1:]), fraction=0.02, pad=0.01)
    if title:
        figure.suptitle(title)
    return figure


def _load_image(image_path, model):
    """The image file as float32 `(1, H, W, C)` in [0, 255], resized to the model's static input
    size (bilinear) and converted to its channel count (L or RGB)."""
    from PIL import Image

    shape = tuple(model.inputs[0].shape)
    channels = shape[-1]
    with Image.open(image_path) as opened:
        image = opened.convert("L" if channels == 1 else "RGB")
        height, width = shape[1], shape[2]
        if height is not None and width is not None:
            image = image.resize((width, height), Image.BILINEAR)
        array = np.asarray(image, "float32")
    return (array[..., None] if array.ndim == 2 else array)[None]


def save_explanation_figure(model_path, image_path, output, layer=None):
    """Draw the explanation maps of a TreeConv2D of a saved model for one image; save the figure.

    `structconv explain MODEL IMAGE -o OUTPUT [--layer NAME]` calls this.

    The image is fed as the model's input: RGB (or L for one channel) pixel values in [0, 255],
    resized to the model's input size when it is static; a model that expects another scaling
    should include it (e.g. a `Rescaling` layer).

    Args:
        model_path: a `.keras` file.
        image_path: an image file Pillow can read.
        output: where to save the figure (format from the extension, e.g. `.png`).
        layer: name of the TreeConv2D to explain (default: the last one).

    Returns:
        The output path (str).
    """
    import keras

    import keras_structconv  # noqa: F401  (registers the layers for loading)

    model = keras.saving.load_model(model_path)
    image = _load_image(image_path, model)
    maps, name = explanation_maps(model, image, layer)
    figure = plot_explanation(image[0], maps[0], title=f"{model.name}: {name}")
    figure.savefig(output, dpi=100, bbox_inches="tight")
    return str(output)


# --------------------------------------------------------------------------------------------
# QGN segmentation: the prediction beside the quadtree leaves (`structconv segment`)
#
# `save_segmentation_figure(model_path, image_path, output)` runs a saved
# `keras_structconv.models.QGN` on an image file and draws the colour-coded prediction beside
# its quadtree: every pixel coloured
# by the level of the leaf cell it was predicted at (level l = cells of 2^l x 2^l pixels), with
# the outlines of the leaf cells.

# SegNet's CamVid colours (RGB) for the 11 classes of `datasets.CAMVID_CLASS_NAMES`.
CAMVID_COLORS = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
    (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)


def class_colors(num_classes):
    """`(num_classes, 3)` float RGB colours in [0, 1]: CamVid's palette for 11 classes, else
    matplotlib's tab20 (cycled)."""
    if num_classes == len(CAMVID_COLORS):
        return np.asarray(CAMVID_COLORS, "float32") / 255.0
    from matplotlib import colormaps

    table = colormaps["tab20"]
    return np.asarray([table(i % 20)[:3] for i in range(num_classes)], "float32")


def leaf_cell_edges(levels):
    """Boolean `(H, W)`: True on the last row/column of pixels of every quadtree leaf cell.

    `levels[r, c] = l` means pixel (r, c) was predicted by the level-l cell
    `(r >> l, c >> l)`; a pixel is on an edge when its right or lower neighbour belongs to
    another cell.
    """
    levels = np.asarray(levels, np.int64)
    height, width = levels.shape
    rows = np.arange(height)[:, None] >> np.maximum(levels, 0)
    cols = np.arange(width)[None, :] >> np.maximum(levels, 0)
    cell = (levels * (height + 1) + rows) * (width + 1) + cols
    edges = np.zeros(levels.shape, bool)
    edges[:, :-1] |= cell[:, :-1] != cell[:, 1:]
    edges[:-1, :] |= cell[:-1, :] != cell[1:, :]
    return edges


def plot_segmentation(image, classes, levels, class_names=None, num_levels=None, title=None):
    """A figure: the image, the colour-coded prediction and the quadtree leaf levels.

    Args:
        image: `(H, W, 3)` array (any range; rescaled to [0, 1] for display).
        classes: `(H, W)` predicted class ids 0..K-1.
        levels: `(H, W)` level of the leaf each pixel was predicted at (0 = full resolution).
        class_names: names of the K classes (legend); default "class i". Their number sets K.
        num_levels: number of quadtree levels (legend); default `levels.max() + 1`.
        title: optional figure title.

    Returns:
        A `matplotlib.figure.Figure`.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    image = np.asarray(image, "float32")
    classes = np.asarray(classes)
    levels = np.asarray(levels)
    if classes.shape != levels.shape or image.shape[:2] != classes.shape:
        raise ValueError(
            "`image` (H, W, 3), `classes` and `levels` (H, W) must have the same height and "
            f"width. Received: image.shape={image.shape}, classes.shape={classes.shape}, "
            f"levels.shape={levels.shape}"
        )
    if class_names is None:
        class_names = [f"class {i}" for i in range(int(classes.max()) + 1)]
    num_levels = int(levels.max()) + 1 if num_levels is None else int(num_levels)
    colors = class_colors(len(class_names))
    low, high = float(image.min()), float(image.max())
    shown = (image - low) / (high - low) if high > low else np.zeros_like(image)

    from matplotlib import colormaps

    level_table = colormaps["viridis"]
    level_colors = np.asarray(
        [level_table(i / max(1, num_levels - 1))[:3] for i in range(num_levels)], "float32"
    )
    leaf_map = level_colors[np.clip(levels, 0, num_levels - 1)]
    # Full-resolution leaves are single pixels: outlining them would paint them black.
    leaf_map[leaf_cell_edges(levels) & (levels > 0)] = 0.0

    figure = Figure(figsize=(15.0, 4.4))
    axes = figure.subplots(1, 3)
    axes[0].imshow(shown)
    axes[0].set_title("input")
    axes[1].imshow(colors[np.clip(classes, 0, len(colors) - 1)], interpolation="nearest")
    axes[1].set_title("prediction")
    axes[2].imshow(leaf_map, interpolation="nearest")
    axes[2].set_title("quadtree leaves (level of each cell)")
    for axis in axes:
        axis.set_axis_off()
    present = np.unique(classes)
    axes[1].legend(
        handles=[Patch(color=colors[c], label=class_names[c]) for c in present],
        loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=4, fontsize=7, frameon=False,
    )
    counts = np.bincount(np.clip(levels, 0, num_levels - 1).ravel(), minlength=num_levels)
    axes[2].legend(
        handles=[
            Patch(color=level_colors[level],
                  label=f"level {level} ({2 ** level}px): {counts[level] / levels.size:.0%}")
            for level in range(num_levels)
        ],
        loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, fontsize=7, frameon=False,
    )
    if title:
        figure.suptitle(title)
    return figure


def _segmentation_input(image_path, input_shape):
    """The image as uint8 `(h, w, 3)` (shrunk to fit `input_shape` when larger, aspect kept) and
    the model input `(1, H, W, 3)`: standardised like the CamVid loader, zero pixels (before
    standardisation) padded at the bottom/right."""
    from PIL import Image

    from keras_structconv.datasets import camvid

    height, width = int(input_shape[0]), int(input_shape[1])
    with Image.open(image_path) as opened:
        picture = opened.convert("RGB")
        scale = min(1.0, height / picture.height, width / picture.width)
        if scale < 1.0:
            size = (max(1, int(picture.width * scale)), max(1, int(picture.height * scale)))
            picture = picture.resize(size, Image.BILINEAR)
        pixels = np.asarray(picture, np.uint8)
    canvas = np.zeros((height, width, 3), "float32")
    canvas[: pixels.shape[0], : pixels.shape[1]] = pixels
    standardised = (canvas / 255.0 - np.asarray(camvid.MEAN, "float32")) / np.asarray(
        camvid.STD, "float32"
    )
    return pixels, standardised[None]


def save_segmentation_figure(model_path, image_path, output, propagation="pred"):
    """Run a saved QGN on an image file; save the prediction beside its quadtree leaves.

    `structconv segment MODEL IMAGE -o OUTPUT` calls this.

    The image is standardised like the CamVid loader (ImageNet mean/std), padded at the
    bottom/right to the model's input size (shrunk first when larger), and the prediction is
    cropped back to the image.

    Args:
        model_path: a `.keras` file holding a `keras_structconv.models.QGN`.
        image_path: an image file Pillow can read.
        output: where to save the figure (format from the extension).
        propagation: "pred" (inference) or "all" (dense decoding); "gt" needs labels.

    Returns:
        `(output path, {"classes": (h, w), "levels": (h, w)})`.
    """
    import keras

    import keras_structconv  # noqa: F401  (registers the layers for loading)
    from keras_structconv.models import QGN

    if propagation not in ("pred", "all"):
        raise ValueError(
            "`propagation` must be 'pred' or 'all' (the 'gt' scheme needs label maps). "
            f"Received: propagation={propagation!r}"
        )
    model = keras.saving.load_model(model_path)
    if not isinstance(model, QGN):
        raise ValueError(
            f"The model must be a keras_structconv.models.QGN. Received: {type(model).__name__} "
            f"from {str(model_path)!r}"
        )
    pixels, inputs = _segmentation_input(image_path, model.image_shape)
    outputs = model(inputs, propagation=propagation, training=False)
    height, width = pixels.shape[:2]
    classes = np.asarray(outputs["classes"])[0, :height, :width]
    levels = np.asarray(outputs["levels"])[0, :height, :width]
    if model.num_classes == len(CAMVID_COLORS):
        from keras_structconv.datasets import CAMVID_CLASS_NAMES

        names = list(CAMVID_CLASS_NAMES)
    else:
        names = [f"class {i}" for i in range(model.num_classes)]
    figure = plot_segmentation(
        pixels, classes, levels, class_names=names, num_levels=model.levels,
        title=f"{model.name} ({model.encoder_name}), propagation {propagation!r}",
    )
    # Enough dots per inch that every image pixel gets at least one: 1-pixel cell outlines stay.
    dpi = max(100, int(np.ceil(1.4 * width * 3 / figure.get_figwidth())))
    figure.savefig(output, dpi=dpi, bbox_inches="tight")
    return str(output), {"classes": classes, "levels": levels}


__all__ += [
    "CAMVID_COLORS",
    "class_colors",
    "leaf_cell_edges",
    "plot_segmentation",
    "save_segmentation_figure",
]
