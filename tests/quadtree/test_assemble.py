"""Inference assembly: a hand-worked example, a per-pixel NumPy reference on random quadtrees,
the decoder's sparse vs dense outputs, and an oracle round trip on real CamVid labels."""

import numpy as np
import pytest
import tensorflow as tf

from keras_structconv.quadtree import pad_to_multiple, tpyramid_labels
from keras_structconv.quadtree.assemble import UNASSIGNED, assemble_prediction
from keras_structconv.quadtree.decoder import QuadtreeDecoder, composite_masks_from_labels


def sparse_form(logits, masks, seed=0):
    """The sparse outputs (logits at the active sites, in a shuffled order) of dense ones."""
    rng = np.random.default_rng(seed)
    out_logits, out_indices = [], []
    for level_logits, mask in zip(logits, masks, strict=True):
        sites = np.argwhere(np.asarray(mask)).astype("int32")
        sites = sites[rng.permutation(len(sites))]
        out_logits.append(tf.constant(np.asarray(level_logits)[tuple(sites.T)]))
        out_indices.append(tf.constant(sites.reshape(-1, 3)))
    return {"logits": out_logits, "indices": out_indices, "masks": [tf.constant(m) for m in masks]}


def test_hand_worked_example_with_composite_at_the_last_level():
    # 3 levels, 4x4 pixels; channel 0 = composite, channel c+1 = class c.
    top = np.array([5, 1, 0, 0], "float32").reshape(1, 1, 1, 4)  # composite -> refined
    middle = np.array(
        [[[0, 0, 3, 1], [4, 0, 0, 2]],   # (0,0) leaf class 1; (0,1) composite -> refined
         [[0, 1, 0, 0], [1, 0, 0, 5]]],  # (1,0) leaf class 0; (1,1) leaf class 2
        "float32",
    )[np.newaxis]
    bottom = np.zeros((1, 4, 4, 4), "float32")
    bottom[0, 0, 2] = [0, 2, 0, 0]  # class 0
    bottom[0, 0, 3] = [9, 1, 3, 2]  # composite at its last level -> best other class: 1, not 0
    bottom[0, 1, 2] = [0, 0, 0, 1]  # class 2
    bottom[0, 1, 3] = [0, 0, 1, 0]  # class 1
    masks = [np.zeros((1, 4, 4), bool), np.ones((1, 2, 2), bool), np.ones((1, 1, 1), bool)]
    masks[0][0, :2, 2:] = True
    expected = np.array([[1, 1, 0, 1], [1, 1, 2, 1], [0, 0, 2, 2], [0, 0, 2, 2]])[np.newaxis]
    expected_levels = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]])
    dense = {"logits": [bottom, middle, top], "masks": masks}
    for outputs in (dense, sparse_form(dense["logits"], masks)):
        classes, levels = assemble_prediction(outputs, return_levels=True)
        np.testing.assert_array_equal(classes.numpy(), expected)
        np.testing.assert_array_equal(levels.numpy()[0], expected_levels)


def random_quadtree(seed, batch=2, top=(2, 3), num_levels=4, classes=5):
    """Random per-level logits and nested active masks (children of random parents)."""
    rng = np.random.default_rng(seed)
    masks = [np.ones((batch, *top), bool)]
    for _ in range(num_levels - 1):
        parents = masks[-1] & (rng.random(masks[-1].shape) < 0.5)
        masks.append(np.repeat(np.repeat(parents, 2, axis=1), 2, axis=2))
    masks = masks[::-1]
    logits = [
        rng.standard_normal(m.shape + (classes + 1,)).astype("float32") * m[..., None]
        for m in masks
    ]
    return logits, masks


def numpy_assembly(logits, masks):
    """Per pixel: the finest active level, its best non-composite class."""
    batch, height, width = masks[0].shape
    classes = np.full((batch, height, width), -1)
    levels = np.full((batch, height, width), -1)
    for b in range(batch):
        for r in range(height):
            for c in range(width):
                for level, mask in enumerate(masks):
                    if mask[b, r >> level, c >> level]:
                        classes[b, r, c] = np.argmax(logits[level][b, r >> level, c >> level, 1:])
                        levels[b, r, c] = level
                        break
    return classes, levels


@pytest.mark.parametrize("seed", [1, 2])
def test_matches_per_pixel_numpy_reference(seed):
    logits, masks = random_quadtree(seed)
    expected, expected_levels = numpy_assembly(logits, masks)
    for outputs in ({"logits": logits, "masks": masks}, sparse_form(logits, masks, seed)):
        classes, levels = assemble_prediction(outputs, return_levels=True)
        np.testing.assert_array_equal(classes.numpy(), expected)
        np.testing.assert_array_equal(levels.numpy(), expected_levels)


def test_pixels_without_active_cell_are_unassigned():
    logits, masks = random_quadtree(3)
    masks[-1][0, 0, 0] = False
    masks[-2][0, :2, :2] = False
    masks[-3][0, :4, :4] = False
    masks[0][0, :8, :8] = False
    logits = [lg * m[..., None] for lg, m in zip(logits, masks, strict=True)]
    classes = assemble_prediction({"logits": logits, "masks": masks}).numpy()
    assert np.all(classes[0, :8, :8] == UNASSIGNED)
    assert np.all(classes[:, 8:] >= 0) and np.all(classes[1] >= 0)


def test_decoder_pred_outputs_sparse_and_dense_agree_and_leaves_are_not_composite():
    features = [
        tf.random.stateless_normal((2, 32 >> (i + 1), 32 >> (i + 1), 3), seed=(i, 1))
        for i in range(3)
    ]
    config = dict(num_levels=4, filters=(4, 4, 4), units=(1, 1, 1), top_filters=4)
    sparse = QuadtreeDecoder(3, output_mode="sparse", **config)
    dense = QuadtreeDecoder(3, output_mode="dense", **config)
    sparse.build([f.shape for f in features])
    dense.build([f.shape for f in features])
    dense.set_weights(sparse.get_weights())
    # A composite-leaning top head so that something is propagated to every level.
    bias = sparse.heads[-1].bias
    bias.assign(bias.numpy() + np.array([1.5, 0, 0, 0], "float32"))
    dense.heads[-1].bias.assign(bias.numpy())
    out_sparse = sparse(features, propagation="pred")
    out_dense = dense(features, propagation="pred")
    classes, levels = assemble_prediction(out_sparse, return_levels=True)
    np.testing.assert_array_equal(classes.numpy(), assemble_prediction(out_dense).numpy())
    # A pixel decided above level 0 sits in a cell predicted non-composite (else it would have
    # been refined); at level 0 any prediction is possible.
    for level in range(1, 4):
        cell_logits = out_dense["logits"][level].numpy()
        rows, cols = np.nonzero(levels.numpy()[0] == level)
        cells = cell_logits[0, rows >> level, cols >> level]
        assert np.all(np.argmax(cells, axis=-1) != 0)
    assert set(np.unique(levels.numpy())) - {0, 1, 2, 3} == set()


def test_oracle_logits_reproduce_camvid_labels(camvid_dir):
    """Ground-truth one-hot logits at the gt-active sites assemble back to the label map."""
    from keras_structconv.datasets.camvid import load_camvid_arrays

    _, labels = load_camvid_arrays("test", data_dir=camvid_dir)
    padded, _ = pad_to_multiple(np.asarray(labels[:3], "int32"), 32, 255)
    padded = np.asarray(padded)
    level_labels = [np.asarray(t) for t in tpyramid_labels(padded, 6, 11)]
    composite = [np.asarray(m) for m in composite_masks_from_labels(level_labels)]
    masks = [np.repeat(np.repeat(c, 2, axis=1), 2, axis=2) for c in composite]
    masks.append(np.ones(level_labels[-1].shape, bool))
    # One-hot of the training label where active (-1, ignored leaves, stays all zero).
    logits = [
        np.eye(12, dtype="float32")[np.maximum(t, 0)] * ((t >= 0) & m)[..., None]
        for t, m in zip(level_labels, masks, strict=True)
    ]
    classes = assemble_prediction(sparse_form(logits, masks)).numpy()
    labelled = padded != 255
    np.testing.assert_array_equal(classes[labelled], padded[labelled])
    # The per-level decision happens at each pixel's leaf: many pixels are decided early.
    _, levels = assemble_prediction({"logits": logits, "masks": masks}, return_levels=True)
    assert np.mean(levels.numpy() == 5) > 0.3


def test_errors():
    logits, masks = random_quadtree(4)
    with pytest.raises(ValueError, match="output dict"):
        assemble_prediction(logits)
    with pytest.raises(ValueError, match="one entry per level"):
        assemble_prediction({"logits": logits, "masks": masks[:-1]})
    with pytest.raises(ValueError, match="twice the size"):
        assemble_prediction({"logits": logits[1:] + logits[:1], "masks": masks[1:] + masks[:1]})
