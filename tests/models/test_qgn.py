"""QGN: training, metrics against NumPy, inference in the three propagation modes against NumPy
references (ground-truth leaf levels from the label maps, the assembly of the sparse outputs),
saving, export, the propagation switch, encoder parameter counts and errors.

Small on purpose (the suite runs on 2 shared cores): 32x32 images, 4 levels (the ResNet-18
encoder then stops at stride 8), a tiny decoder; the recipe test (tests/test_zoo_qgn.py) runs
the default 6 levels."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_structconv import export
from keras_structconv.models import QGN
from keras_structconv.models import qgn as qgn_module
from keras_structconv.quadtree import tpyramid_labels
from tests.conftest import needs_quadtree_reload

NUM_CLASSES = 3
LEVELS = 4
SIZE = 32
TINY = dict(
    encoder="resnet18",
    levels=LEVELS,
    input_shape=(SIZE, SIZE, 3),
    decoder_filters=(8, 8, 8),
    decoder_units=(1, 1, 1),
    top_filters=16,
)
FIT_STEPS = 6


def fixed_batch():
    """Two 32x32 label maps with uniform regions, a diagonal boundary (full-resolution leaves)
    and void pixels, and images whose colour follows the class (learnable) plus noise."""
    rows, cols = np.mgrid[:SIZE, :SIZE]
    first = np.where(cols < 16, 0, 1)
    first[20:, 4:12] = 2
    first[:3, :5] = 255
    second = np.where(rows > cols, 2, 0)
    second[28:] = 255
    labels = np.stack([first, second]).astype("int32")
    palette = np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.5], [0.0, 0.5, -1.0]], "float32")
    rng = np.random.default_rng(0)
    images = palette[np.clip(labels, 0, NUM_CLASSES - 1)] + rng.normal(0, 0.3, labels.shape + (3,))
    return images.astype("float32"), labels


@keras.saving.register_keras_serializable(package="tests")
class SpySGD(keras.optimizers.SGD):
    """SGD that counts `scale_loss` calls (the custom train_step must make one)."""

    scale_loss_calls = 0

    def scale_loss(self, loss):
        SpySGD.scale_loss_calls += 1
        return super().scale_loss(loss)


@pytest.fixture(scope="module")
def trained():
    """A tiny QGN after FIT_STEPS steps on the fixed batch (one step per epoch), its history."""
    keras.utils.set_random_seed(0)
    images, labels = fixed_batch()
    model = QGN(NUM_CLASSES, **TINY)
    model.compile(optimizer=SpySGD(0.01, momentum=0.9), jit_compile=False)
    history = model.fit(images, labels, batch_size=2, epochs=FIT_STEPS, verbose=0, shuffle=False)
    return model, history.history, images, labels


# ------------------------------------------------------------------------------- references


def gt_leaf_levels(labels, levels=LEVELS):
    """Level of the ground-truth quadtree leaf covering each pixel: the coarsest level whose
    2^l x 2^l block around the pixel is uniform (void counts as a value)."""
    batch, height, width = labels.shape
    result = np.zeros(labels.shape, "int32")
    for level in range(levels):
        size = 2**level
        blocks = labels.reshape(batch, height // size, size, width // size, size)
        uniform = (blocks.min(axis=(2, 4)) == blocks.max(axis=(2, 4)))
        uniform = np.repeat(np.repeat(uniform, size, axis=1), size, axis=2)
        result[uniform] = level
    return result


def dense_levels(outputs, batch):
    """Per level: dense logits (B, h, w, K+1) and active masks from the sparse decoder outputs."""
    dense = []
    for logits, indices, mask in zip(
        outputs["logits"], outputs["indices"], outputs["masks"], strict=True
    ):
        mask = np.asarray(mask)
        grid = np.zeros(mask.shape + (NUM_CLASSES + 1,), "float32")
        index = np.asarray(indices)
        grid[index[:, 0], index[:, 1], index[:, 2]] = np.asarray(logits)
        active = np.zeros(mask.shape, bool)
        active[index[:, 0], index[:, 1], index[:, 2]] = True
        dense.append((grid, active))
    return dense


def numpy_assembly(outputs, batch):
    """(classes, levels): every pixel takes the best non-composite class of its finest active
    cell; also checks that the cells above it were active."""
    dense = dense_levels(outputs, batch)
    rows, cols = np.mgrid[:SIZE, :SIZE]
    levels = np.full((batch, SIZE, SIZE), -1)
    classes = np.full((batch, SIZE, SIZE), -1)
    for level in range(LEVELS - 1, -1, -1):
        grid, active = dense[level]
        cell_active = active[:, rows >> level, cols >> level]
        cell_class = np.argmax(grid[:, rows >> level, cols >> level, 1:], axis=-1)
        levels = np.where(cell_active, level, levels)
        classes = np.where(cell_active, cell_class, classes)
    return classes, levels, dense


def numpy_metrics(classes, labels):
    valid = labels != 255
    accuracy = np.mean(classes[valid] == labels[valid])
    confusion = np.bincount(
        labels[valid] * NUM_CLASSES + classes[valid], minlength=NUM_CLASSES**2
    ).reshape(NUM_CLASSES, NUM_CLASSES)
    diagonal = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - diagonal
    return accuracy, np.mean(diagonal[union > 0] / union[union > 0]), confusion


def numpy_loss(model, images, labels, propagation):
    """L_0 + sum_l beta_l L_l with NumPy cross-entropies over the supervised active cells."""
    level_labels = [np.asarray(t) for t in tpyramid_labels(labels, LEVELS, NUM_CLASSES)]
    outputs = model.decode(images, level_labels, propagation=propagation)
    level_losses = []
    for labels_l, logits, indices in zip(
        level_labels, outputs["logits"], outputs["indices"], strict=True
    ):
        index = np.asarray(indices)
        target = labels_l[index[:, 0], index[:, 1], index[:, 2]]
        logits = np.asarray(logits, "float64")
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        keep = target >= 0
        losses = -log_probabilities[np.nonzero(keep)[0], target[keep]]
        level_losses.append(losses.mean() if losses.size else 0.0)
    beta = model.quadtree_loss_weights.beta.numpy()
    return level_losses[0] + np.sum(beta[1:] * np.asarray(level_losses[1:]))


# ------------------------------------------------------------------------------- tests


def test_fit_reduces_the_loss_and_moves_the_adaptive_weights(trained):
    model, history, _, _ = trained
    losses = history["loss"]
    assert losses[-1] < 0.7 * losses[0], losses
    assert SpySGD.scale_loss_calls >= 1  # traced once, runs every step
    # One step per epoch: the epoch's level losses are the step's, which drive beta (Eq. 8).
    beta = np.ones(LEVELS)
    for step in range(FIT_STEPS):
        level = np.array([history[f"level{lv}_loss"][step] for lv in range(LEVELS)])
        beta[1:] = 0.99 * beta[1:] + 0.01 * level[1:] / level[0]
    np.testing.assert_allclose(model.quadtree_loss_weights.beta.numpy(), beta, rtol=1e-5)


@pytest.mark.parametrize("propagation", ["all", "gt", "pred"])
def test_evaluate_metrics_and_loss_match_numpy(trained, propagation):
    model, _, images, labels = trained
    model.propagation = propagation
    metrics = model.evaluate(images, labels, batch_size=1, verbose=0, return_dict=True)
    classes = np.asarray(model(images, labels=labels)["classes"])  # eager: no extra trace
    accuracy, mean_iou, confusion = numpy_metrics(classes, labels)
    np.testing.assert_allclose(metrics["pixel_accuracy"], accuracy, rtol=1e-6)
    np.testing.assert_allclose(metrics["mean_iou"], mean_iou, rtol=1e-5)
    np.testing.assert_array_equal(model.confusion_matrix(), confusion)
    # The loss tracker averages the per-batch (here per-image) totals.
    expected_loss = np.mean(
        [numpy_loss(model, images[i : i + 1], labels[i : i + 1], propagation) for i in range(2)]
    )
    np.testing.assert_allclose(metrics["loss"], expected_loss, rtol=1e-4)


def test_predict_in_each_mode_against_numpy_assembly(trained):
    """Also the propagation switch: each `predict` follows the attribute set just before (a
    stale traced function would repeat the previous mode's quadtree)."""
    model, _, images, labels = trained
    model.propagation = "gt"
    gt = model.predict((images, labels), batch_size=2, verbose=0)
    np.testing.assert_array_equal(gt["levels"], gt_leaf_levels(labels))

    model.propagation = "all"
    dense = model.predict(images, batch_size=2, verbose=0)
    np.testing.assert_array_equal(dense["levels"], np.zeros_like(labels))
    all_outputs = model.decode(images, propagation="all")
    classes, _, _ = numpy_assembly(all_outputs, 2)
    np.testing.assert_array_equal(dense["classes"], classes)

    model.propagation = "pred"
    predicted = model.predict(images, batch_size=2, verbose=0)
    outputs = model.decode(images, propagation="pred")
    classes, levels, levels_dense = numpy_assembly(outputs, 2)
    np.testing.assert_array_equal(predicted["classes"], classes)
    np.testing.assert_array_equal(predicted["levels"], levels)
    # "pred" semantics: a cell is refined exactly when it is predicted composite.
    for level in range(1, LEVELS):
        grid, active = levels_dense[level]
        composite = active & (np.argmax(grid, axis=-1) == 0)
        children = np.repeat(np.repeat(composite, 2, axis=1), 2, axis=2)
        np.testing.assert_array_equal(levels_dense[level - 1][1], children)


def test_propagation_argument_and_setter(trained):
    model, _, images, labels = trained
    model.propagation = "gt"
    out = model(images, propagation="all")  # the argument overrides the attribute
    np.testing.assert_array_equal(out["levels"], 0)
    out = model(images, labels=labels)
    np.testing.assert_array_equal(out["levels"], gt_leaf_levels(labels))
    with pytest.raises(ValueError, match="propagation"):
        model.propagation = "dense"
    assert model.propagation == "gt"
    # Setting the scheme drops the traced step functions (behaviour: the predict test).
    model.predict_function = model.test_function = model.train_function = object()
    model.propagation = "pred"
    assert model.predict_function is None and model.test_function is None
    assert model.train_function is None


@needs_quadtree_reload
def test_save_and_reload_keep_beta_weights_and_outputs(trained, tmp_path):
    model, _, images, labels = trained
    model.propagation = "pred"
    beta = model.quadtree_loss_weights.beta.numpy()
    assert np.all(beta[1:] != 1.0)  # moved by training: the check below means something
    path = tmp_path / "qgn.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert isinstance(reloaded, QGN) and reloaded.propagation == "pred"
    np.testing.assert_array_equal(reloaded.quadtree_loss_weights.beta.numpy(), beta)
    for name in ("logits",):
        for ours, theirs in zip(
            model.decode(images, propagation="all")[name],
            reloaded.decode(images, propagation="all")[name],
            strict=True,
        ):
            np.testing.assert_allclose(ours, theirs, atol=1e-5)
    for key in ("classes", "levels"):
        np.testing.assert_array_equal(reloaded(images)[key], model(images)[key])
    assert reloaded.get_config() == model.get_config()


def test_reload_is_refused_on_old_keras(trained, monkeypatch):
    model = trained[0]
    monkeypatch.setattr(qgn_module, "_keras_version", lambda: (3, 14))
    with pytest.raises(ValueError, match=r"needs Keras >= 3\.15.*Received: keras.__version__="):
        QGN.from_config(model.get_config())


def test_export_of_the_pred_path_equals_predict(trained, tmp_path):
    model, _, images, _ = trained
    model.propagation = "gt"  # export serves "pred" whatever the attribute says
    model.export(str(tmp_path / "served"), verbose=False)
    served = keras.layers.TFSMLayer(str(tmp_path / "served"), call_endpoint="serve",
                                    dtype="float32")
    outputs = served(images)
    expected = model(images, propagation="pred")
    for key in ("classes", "levels"):
        np.testing.assert_array_equal(np.asarray(outputs[key]), np.asarray(expected[key]))


@pytest.mark.parametrize("runtime", ["tflite", "onnx"])
def test_pred_path_runs_in_tflite_and_onnxruntime(trained, runtime, tmp_path):
    """Traced on the portable path (no `LowerBound`), the sparse decoder converts with builtin
    ops and gives the same classes and levels as Keras."""
    model, _, images, _ = trained
    options = {"input_shape": images.shape[1:], "call_kwargs": {"propagation": "pred"}}
    if runtime == "tflite":
        outputs = export.tflite_predict(export.to_tflite(model, **options), images)
    else:
        export.to_onnx(model, tmp_path / "qgn.onnx", **options)
        outputs = export.onnx_predict(tmp_path / "qgn.onnx", images)
    expected = model(images, propagation="pred", training=False)
    for key in ("classes", "levels"):
        np.testing.assert_array_equal(np.asarray(outputs[key]), np.asarray(expected[key]))


def test_with_input_shape_copies_every_weight(trained):
    model, _, images, _ = trained
    bigger = model.with_input_shape((128, 96, 3))
    assert bigger.image_shape == (128, 96, 3)
    for ours, theirs in zip(model.weights, bigger.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    canvas = np.zeros((1, 128, 96, 3), "float32")  # the image in a corner of a bigger frame
    canvas[:, :SIZE, :SIZE] = images[:1]
    assert bigger(canvas, propagation="pred")["classes"].shape == (1, 128, 96)
    # At the same size, the copy computes the same function (the constructor, not `from_config`,
    # builds it: also on Keras < 3.15, where `from_config` refuses).
    same = model.with_input_shape(model.image_shape)
    for key in ("classes", "levels"):
        np.testing.assert_array_equal(
            np.asarray(same(images, propagation="pred", training=False)[key]),
            np.asarray(model(images, propagation="pred", training=False)[key]),
        )


def _encoder_trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.encoder.trainable_weights)


def test_encoder_parameter_counts():
    # torchvision resnet18 without fc: 11,689,512 - 513,000; levels=5 drops layer4 (8,393,728).
    six = dict(TINY, levels=6, input_shape=(64, 64, 3), decoder_filters=(8,) * 5,
               decoder_units=(1,) * 5)
    assert _encoder_trainable(QGN(NUM_CLASSES, **six)) == 11_176_512
    five = dict(six, levels=5, decoder_filters=(8,) * 4, decoder_units=(1,) * 4)
    assert _encoder_trainable(QGN(NUM_CLASSES, **five)) == 11_176_512 - 8_393_728
    # keras.applications.ResNet50(include_top=False): 23,587,712 weights, 53,120 BN statistics.
    model = QGN(NUM_CLASSES, **dict(six, encoder="resnet50"))
    assert _encoder_trainable(model) == 23_587_712 - 53_120
    assert [tuple(o.shape[1:]) for o in model.encoder.outputs] == [
        (32, 32, 64), (16, 16, 256), (8, 8, 512), (4, 4, 1024), (2, 2, 2048)
    ]


def test_errors(trained):
    model, _, images, labels = trained
    with pytest.raises(ValueError, match=r"`encoder` must be one of .*Received: encoder='vgg'"):
        QGN(NUM_CLASSES, **dict(TINY, encoder="vgg"))
    with pytest.raises(ValueError, match=r"`propagation` must be one of .*Received"):
        QGN(NUM_CLASSES, propagation="sparse", **TINY)
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match=r"`num_classes` must be an integer >= 1"):
            QGN(bad, **TINY)
    with pytest.raises(ValueError, match=r"`levels` must be an integer in \[2, 6\]"):
        QGN(NUM_CLASSES, **dict(TINY, levels=7))
    with pytest.raises(ValueError, match=r"multiples of 2\*\*\(levels - 1\) = 8"):
        QGN(NUM_CLASSES, **dict(TINY, input_shape=(30, 32, 3)))
    with pytest.raises(ValueError, match=r"`ignore_index` must be an integer that is not a class"):
        QGN(NUM_CLASSES, ignore_index=1, **TINY)
    with pytest.raises(ValueError, match=r"static `input_shape`.*Received: images.shape"):
        model(tf.zeros((1, 16, 32, 3)), propagation="pred")
    with pytest.raises(ValueError, match=r'propagation="gt" needs the label maps'):
        model(images, propagation="gt")
    with pytest.raises(ValueError, match=r"cannot use propagation=\"gt\""):
        model.export("unused", propagation="gt")
    model.propagation = "pred"
    with pytest.raises(ValueError, match=r"need \(images, labels\) pairs"):
        model.evaluate(images, verbose=0)
