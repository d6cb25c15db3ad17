"""PSConv2D: poly-scale convolution.

Reference: Duo Li, Anbang Yao, Qifeng Chen, "PSConv: Squeezing Feature Pyramid into One Compact
Poly-Scale Convolutional Layer", ECCV 2020, Sections 3.1-3.2 (https://arxiv.org/abs/2007.06191).

A K×K convolution whose dilation rate differs per kernel (Eq. 3),

    H[c, x, y] = sum_k sum_ij G[c, k, i, j] * F[k, x + i*D[c, k], y + j*D[c, k]],

with the dilation matrix `D` built from a cyclic pattern of length t (the *cyclic interval*) that
runs along the input channels and shifts by one step from one filter to the next (Section 3.2).
In block form, inputs and outputs (of each group) are split into t contiguous blocks and

    D[o, k] = dilation_pattern[(k // (C_in/t) - o // (C_out/t)) mod t].

For t = 4 and the default pattern (1, 2, 1, 4), rows output blocks, columns input blocks:

    D = [[1, 2, 1, 4],
         [4, 1, 2, 1],
         [1, 4, 1, 2],
         [2, 1, 4, 1]]

This is the paper's channel-granular `D` up to a permutation of input and output channels, which
the neighbouring layers absorb; every row and column holds the whole pattern. With `groups > 1`
the pattern applies inside each group (Section 3.2, PS-ResNeXt).

The authors' `PSConv2d(in, out, 3, stride, padding=1, dilation=d, parts=4)` is
`PSConv2D(out, 3, strides=stride, cyclic_interval=4, dilation_pattern=(d, 1, 2*d, 1))` up to a
permutation of the output blocks; it stores 1.5x the weights, this layer exactly a vanilla
conv's (36,864 at 64→64, 3×3). Implementation notes: `docs/design/ps_conv.md`.

- `pattern`: the default pattern, `D`, the slot and Keras kernel layouts;
- `formulations`: the three exact ways to compute the layer and the rule picking one;
- `layer`: the Keras layer `PSConv2D`; `factory`: `psconv_factory`.

Example:

```python
layer = keras_structconv.PSConv2D(64, 3, padding="same")  # t = 4, pattern (1, 2, 1, 4)
y = layer(np.zeros((8, 56, 56, 64), "float32"))           # (8, 56, 56, 64), 36,864 weights
model = keras_structconv.models.PSResNet50()               # every bottleneck 3×3 replaced
```
"""

from keras_structconv.layers.ps_conv.factory import psconv_factory
from keras_structconv.layers.ps_conv.formulations import FORMULATIONS, MASKED, SLOTS, SPLIT
from keras_structconv.layers.ps_conv.layer import PSConv2D
from keras_structconv.layers.ps_conv.pattern import (
    default_dilation_pattern,
    dense_to_slots,
    slots_to_dense,
)

__all__ = [
    "FORMULATIONS",
    "MASKED",
    "SLOTS",
    "SPLIT",
    "PSConv2D",
    "default_dilation_pattern",
    "dense_to_slots",
    "psconv_factory",
    "slots_to_dense",
]
