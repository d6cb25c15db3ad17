"""The search space: the layout of a backbone, the choices each stage allows, and the models the
chosen values build (exact parameter counts from the operators' formulas, exact padding)."""

import keras
import keras_tuner
import numpy as np
import pytest

from keras_structconv.layers import AOGBlock, PSConv2D, TreeAttention, TreeConv2D
from keras_structconv.tuning import StructconvHyperModel, get_backbone, parse_operators
from keras_structconv.tuning.timing import trainable_parameters

RESNET20_TRAINABLE = 269_722  # He et al.'s ResNet-20, 10 classes (models.cifar_resnet)


def _hp(hypermodel, **values):
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    hp.values.update(values)
    return hp


def _layers(model, kind):
    return [layer for layer in model.layers if type(layer) is kind]


def test_resnet20_layout_and_the_choices_each_stage_allows():
    hypermodel = StructconvHyperModel("ResNet20", "psconv,treeconv,tam")
    layout = hypermodel.layout
    assert layout.num_stages == 3
    assert [len(layout.conv_sites_of(s)) for s in (1, 2, 3)] == [6, 6, 6]
    assert [s.channels for s in layout.attention_sites] == [16] * 3 + [32] * 3 + [64] * 3
    first = layout.conv_sites_of(2)[0]
    assert (first.name, first.in_channels, first.filters, first.strides) == (
        "conv3_block1_1_conv", 16, 32, 2
    )
    hp = _hp(hypermodel)
    choices = {p.name: list(p.values) for p in hp.space if hasattr(p, "values")}
    for stage in (1, 2, 3):
        assert choices[f"stage{stage}_conv"] == ["psconv", "treeconv", "vanilla"]
        assert choices[f"stage{stage}_ps_interval"] == [2, 4, 8]
    # The reference TreeConv2D needs width-preserving convolutions with d + 1 | width: only
    # stage 1 (16 -> 16 everywhere) qualifies, with d = 1 or 3.
    assert choices["stage1_tree_variant"] == ["paper", "reference"]
    assert choices["stage1_tree_reference_depth"] == [1, 3]
    assert "stage2_tree_variant" not in choices and "stage3_tree_variant" not in choices
    assert choices["stage1_tam_group_size"] == [2, 4, 8, 16]
    assert choices["stage3_tam_group_size"] == [2, 4, 8, 16, 32, 64]
    # Defaults are the papers' choices.
    assert hp.values["stage2_ps_pattern"] == "1,2,1,4"
    assert hp.values["stage3_tam_group_size"] == 2


def test_chosen_values_build_the_operators_with_exact_parameter_counts():
    hypermodel = StructconvHyperModel("ResNet20", "psconv,treeconv,tam")
    hp = _hp(
        hypermodel,
        stage1_conv="psconv", stage1_ps_interval=4, stage1_ps_pattern="1,4,1,1",
        stage1_attention="tam", stage1_tam_group_size=4,
        stage2_conv="treeconv", stage2_tree_depth=2, stage2_attention="none",
        stage3_conv="vanilla", stage3_attention="none",
    )
    model = hypermodel.build(hp)
    ps = _layers(model, PSConv2D)
    assert [layer.name[:5] for layer in ps] == ["conv2"] * 6
    assert {(layer.cyclic_interval, layer.dilation_pattern) for layer in ps} == {(4, (1, 4, 1, 1))}
    tree = _layers(model, TreeConv2D)
    assert [layer.name[:5] for layer in tree] == ["conv3"] * 6
    assert {layer.depth for layer in tree} == {2}
    vanilla = [layer.name for layer in _layers(model, keras.layers.Conv2D) if "conv4" in layer.name]
    assert len(vanilla) == 5
    # TreeConv2D folds zero padding, so stage 3's strided conv comes with its own padding.
    assert type(model.get_layer("conv4_block1_1_conv")) is keras.Sequential
    tam = _layers(model, TreeAttention)
    assert [layer.name for layer in tam] == [f"conv2_block{i}_add_attention" for i in (1, 2, 3)]
    # Tree gates: depth * (C_in + 1) per conv (one 16-channel input, five 32-channel ones);
    # TAM g=4 on 16 channels: 16 -> 4 (16 weights, 4 biases, 4 slopes) -> 1 (4 + 1).
    gates = 2 * (16 + 1) + 5 * 2 * (32 + 1)
    tam_weights = 3 * (16 + 4 + 4 + 4 + 1)
    assert trainable_parameters(model) == RESNET20_TRAINABLE + gates + tam_weights == 270_173


def _copy_weights_by_name(source, target):
    for layer in source.layers:
        if layer.weights and layer.name in [t.name for t in target.layers]:
            other = target.get_layer(layer.name)
            if [w.shape for w in other.weights] == [w.shape for w in layer.weights]:
                other.set_weights(layer.get_weights())


def _stage2_output(model, images):
    return keras.Model(model.input, model.get_layer("conv3_block3_out").output)(images)


def test_folded_padding_keeps_other_stages_exact():
    """With TreeConv2D in stage 3 the factory folds zero padding (TreeConv2D pads itself); the
    stride-2 convolution of stage 2 then gets the padding too and must compute what the
    explicit ZeroPadding2D + 'valid' convolution computes: vanilla and PSConv2D alike."""
    hypermodel = StructconvHyperModel("ResNet20", "psconv,treeconv", per_stage=True)
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    cases = [
        ({"stage2_conv": "vanilla"}, keras.Sequential),
        ({"stage2_conv": "psconv", "stage2_ps_interval": 2}, PSConv2D),
    ]
    for stage2, folded_type in cases:
        common = {"stage1_conv": "vanilla", **stage2}
        folded = hypermodel.build(_hp(hypermodel, **common, stage3_conv="treeconv"))
        explicit = hypermodel.build(_hp(hypermodel, **common, stage3_conv="vanilla"))
        assert type(folded.get_layer("conv3_block1_1_conv")) is folded_type
        assert "conv3_block1_1_pad" in [layer.name for layer in explicit.layers]
        assert "conv3_block1_1_pad" not in [layer.name for layer in folded.layers]
        _copy_weights_by_name(explicit, folded)
        np.testing.assert_allclose(
            _stage2_output(folded, images), _stage2_output(explicit, images), atol=1e-5
        )


def test_keras_application_through_convert():
    hypermodel = StructconvHyperModel(
        "keras.applications.ResNet50", "psconv,tam", per_stage=False
    )
    model = hypermodel.build(_hp(hypermodel))  # defaults: PSConv t=4, TAM g=2 everywhere
    assert len(_layers(model, PSConv2D)) == 16
    assert len(_layers(model, TreeAttention)) == 16
    # Keras' ResNet50: 25,583,592 trainable weights with 1000 classes, so 23,555,082 with 10
    # (2048 x 990 + 990 fewer); PSConv2D keeps the weights of the conv it replaces (biases
    # included) and TAM g=2 adds 60,336 (16 modules, 4C - 5 weights each).
    assert trainable_parameters(model) == 23_555_082 + 60_336


def test_aognet_primitives_and_pruning():
    hypermodel = StructconvHyperModel("AOGNetCIFAR", "aog")
    hp = _hp(hypermodel)
    choices = {p.name: list(p.values) for p in hp.space}
    # Block widths 64, 128, 248 (laterals): N = 3 divides none of them.
    assert choices["stage1_aog_primitives"] == [2, 4]
    assert choices["stage1_aog_prune"] == [0, 1, 2]
    assert [hp.values[f"stage{s}_aog_prune"] for s in (1, 2, 3)] == [1, 2, 1]  # the preset
    model = hypermodel.build(_hp(hypermodel, stage1_aog_primitives=2, stage1_aog_prune=0))
    blocks = _layers(model, AOGBlock)
    assert [(b.num_primitives, b.prune) for b in blocks] == [(2, 0), (4, 2), (4, 1)]


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="ResNet20.*AOGNetCIFAR.*keras.applications") as error:
        get_backbone("ResNet21")
    assert "Received: backbone='ResNet21'" in str(error.value)
    with pytest.raises(ValueError, match="psconv, treeconv, tam, aog"):
        parse_operators("psconv,treeconvs")
    with pytest.raises(ValueError, match="takes the operators aog"):
        StructconvHyperModel("AOGNetCIFAR", "psconv")
    with pytest.raises(ValueError, match="keras.applications"):
        get_backbone("keras.applications.NoSuchNet")
