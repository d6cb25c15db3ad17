"""PSConv2D benchmarks: the layer against keras Conv2D, PS-ResNets against ResNets, and the layer
against the authors' PyTorch module. Run them under both oneDNN settings (TF_ENABLE_ONEDNN_OPTS=0
and =1): the layer picks a different formulation in each (docs/design/ps_conv.md).

- `psconv_layers`: PSConv2D vs Conv2D (3×3, 'same', no bias) at the four ResNet-50 stage shapes
  64@56², 128@28², 256@14², 512@7², batch 8 and 32, forward and forward+backward. Targets at
  batch 8, forward+backward: geometric mean <= 1.10 (<= 1.45 at 64@56²) with oneDNN, <= 1.4
  (<= 2.0 at 64@56²) without; FLOPs are equal.
- `psconv_formulations`: each of PSConv2D's formulations (`slots`, `masked`, `split`) forced, vs
  Conv2D, forward+backward, at the four stage shapes (batch 8) and the CIFAR ResNet-20 shapes
  16@32², 32@16², 64@8² (batch 128): what the layer's choice rests on.
- `psconv_strided_layers`: the stride-2 PSConv2D of the first block of stages 2-4 (128@56²,
  256@28², 512@14²) vs a stride-2 Conv2D, batch 8, forward+backward.
- `psresnet50_train`: PS-ResNet-50 vs ResNet-50 (v1.5, our builders), one SGD step at 224×224,
  batch 8.
- `psresnet20_train`: PS-ResNet-20 vs ResNet-20, one SGD step at 32×32, batch 128 (target
  <= 1.3; PS-ResNet-50 <= 1.05).
- `psconv_vs_authors_torch`: our PSConv2D (TensorFlow) vs the authors' `PSConv2d` (PyTorch,
  re-implemented below from their release: a masked dense 3×3 conv plus two grouped convs, 1.5×
  the weights) at the four stage shapes, batch 8, forward+backward; plus the authors' module vs
  torch's own Conv2d for context. Skipped when torch is not installed (it is not a dependency:
  `pip install torch` to run it).

`--quick` shrinks every shape to a smoke test.
"""

from benchmarks.cases._stages import STAGES, conv3x3
from benchmarks.runner import FORWARD, FORWARD_BACKWARD, register
from keras_structconv.layers.ps_conv import FORMULATIONS, PSConv2D
from keras_structconv.models import PSResNet20, PSResNet50, ResNet20, ResNet50

STRIDED = ((56, 128), (28, 256), (14, 512))
CIFAR_STAGES = ((32, 16), (16, 32), (8, 64))


def _stage_shapes(bench, batch):
    if bench.quick:
        return [(2, 8, 8, 16)]
    return [(batch, size, size, channels) for size, channels in STAGES]


@register("psconv_layers", description="PSConv2D vs Conv2D at ResNet-50 stage shapes, b8/b32")
def psconv_layers(bench):
    for batch in (8,) if bench.quick else (8, 32):
        for shape in _stage_shapes(bench, batch):
            channels = shape[-1]
            yield from bench.compare_layers(
                f"PSConv2D 3x3 {channels}@{shape[1]}² b{batch}",
                ours=lambda c=channels: PSConv2D(c, 3, padding="same"),
                reference=lambda c=channels: conv3x3(c),
                input_shape=shape,
                modes=(FORWARD, FORWARD_BACKWARD),
            )


def _forced(channels, formulation):
    layer = PSConv2D(channels, 3, padding="same")
    layer._formulation = formulation  # private switch: the layer otherwise picks one at build
    return layer


@register("psconv_formulations",
          description="each PSConv2D formulation forced vs Conv2D, stage and CIFAR shapes")
def psconv_formulations(bench):
    if bench.quick:
        shapes = [(2, 8, 8, 16)]
    else:
        shapes = [(8, s, s, c) for s, c in STAGES] + [(128, s, s, c) for s, c in CIFAR_STAGES]
    for shape in shapes:
        channels = shape[-1]
        for formulation in FORMULATIONS:
            yield from bench.compare_layers(
                f"PSConv2D[{formulation}] {channels}@{shape[1]}² b{shape[0]}",
                ours=lambda c=channels, f=formulation: _forced(c, f),
                reference=lambda c=channels: conv3x3(c),
                input_shape=shape,
                modes=(FORWARD_BACKWARD,),
            )


@register("psconv_strided_layers", description="stride-2 PSConv2D vs stride-2 Conv2D, batch 8")
def psconv_strided_layers(bench):
    shapes = [(2, 8, 8, 16)] if bench.quick else [(8, s, s, c) for s, c in STRIDED]
    for shape in shapes:
        channels = shape[-1]
        yield from bench.compare_layers(
            f"PSConv2D 3x3/2 {channels}@{shape[1]}²",
            ours=lambda c=channels: PSConv2D(c, 3, strides=2, padding="same"),
            reference=lambda c=channels: conv3x3(c, strides=2),
            input_shape=shape,
            modes=(FORWARD_BACKWARD,),
        )


@register("psresnet50_train", description="PS-ResNet-50 vs ResNet-50 train step, 224², batch 8")
def psresnet50_train(bench):
    size, batch = (32, 2) if bench.quick else (224, 8)
    yield bench.compare_train_steps(
        f"PS-ResNet-50 train step {size}² b{batch}",
        ours=lambda: PSResNet50(input_shape=(size, size, 3)),
        reference=lambda: ResNet50(input_shape=(size, size, 3)),
        input_shape=(batch, size, size, 3),
    )


@register("psresnet20_train", description="PS-ResNet-20 vs ResNet-20 train step, 32², batch 128")
def psresnet20_train(bench):
    batch = 4 if bench.quick else 128
    yield bench.compare_train_steps(
        f"PS-ResNet-20 train step 32² b{batch}",
        ours=PSResNet20,
        reference=ResNet20,
        input_shape=(batch, 32, 32, 3),
    )


# ------------------------------------------------------------------ the authors' PyTorch module


def authors_psconv2d(torch, in_channels, out_channels, parts=4, dilation=2):
    """The authors' PSConv2d (github.com/d-li14/PSConv, `psconv.py`) for CPU, 3×3, stride 1.

    `gwconv` (dilation d, groups=parts) + `conv` (dense 3×3 whose diagonal and half-shifted
    blocks are zeroed and kept at zero by a gradient hook) + `gwconv_shift` (dilation 2d,
    groups=parts) on the input with its two channel halves swapped. 55,296 weights at 64→64.
    """
    nn = torch.nn

    class PSConv2d(nn.Module):
        def __init__(self):
            super().__init__()
            self.gwconv = nn.Conv2d(in_channels, out_channels, 3, 1, dilation, dilation,
                                    groups=parts, bias=False)
            self.gwconv_shift = nn.Conv2d(in_channels, out_channels, 3, 1, 2 * dilation,
                                          2 * dilation, groups=parts, bias=False)
            self.conv = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)
            mask = torch.zeros(self.conv.weight.shape, dtype=torch.bool)
            cin, cout = in_channels // parts, out_channels // parts
            for i in range(parts):
                mask[i * cout : (i + 1) * cout, i * cin : (i + 1) * cin] = True
                j = (i + parts // 2) % parts
                mask[j * cout : (j + 1) * cout, i * cin : (i + 1) * cin] = True
            self.register_buffer("mask", mask)
            with torch.no_grad():
                self.conv.weight[mask] = 0
            self.conv.weight.register_hook(lambda grad: grad.masked_fill(self.mask, 0))

        def forward(self, x):
            x1, x2 = x.chunk(2, dim=1)
            x_shift = self.gwconv_shift(torch.cat((x2, x1), dim=1))
            return self.gwconv(x) + self.conv(x) + x_shift

    return PSConv2d()


def _torch_forward_backward(torch, module, shape):
    batch, size, _, channels = shape
    x = torch.randn(batch, channels, size, size, requires_grad=True)

    def step():
        module.zero_grad(set_to_none=True)
        x.grad = None
        y = module(x)
        (y * y).mean().backward()
        return None

    return step


def _tf_forward_backward(layer, shape):
    import tensorflow as tf

    x = tf.random.stateless_normal(shape, seed=(0, 0))
    layer(x)

    @tf.function
    def step(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            loss = tf.reduce_mean(tf.square(layer(inputs)))
        return tape.gradient(loss, [inputs, *layer.trainable_variables])

    return lambda: step(x)


@register("psconv_vs_authors_torch",
          description="our PSConv2D (TF) vs the authors' PyTorch PSConv2d, batch 8, fwd+bwd")
def psconv_vs_authors_torch(bench):
    try:
        import torch
    except ImportError:
        print("psconv_vs_authors_torch: torch is not installed; case skipped")
        return
    for shape in _stage_shapes(bench, 8):
        channels, size = shape[-1], shape[1]
        authors = authors_psconv2d(torch, channels, channels)
        yield bench.compare_callables(
            f"PSConv2D (TF) vs authors' PSConv2d (torch) {channels}@{size}²",
            _tf_forward_backward(PSConv2D(channels, 3), shape),
            _torch_forward_backward(torch, authors, shape),
            mode=FORWARD_BACKWARD,
            shape=shape,
        )
        yield bench.compare_callables(
            f"authors' PSConv2d vs torch Conv2d {channels}@{size}²",
            _torch_forward_backward(torch, authors, shape),
            _torch_forward_backward(
                torch, torch.nn.Conv2d(channels, channels, 3, 1, 1, bias=False), shape
            ),
            mode=FORWARD_BACKWARD,
            shape=shape,
        )
