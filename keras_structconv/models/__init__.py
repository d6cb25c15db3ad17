"""Model builders (Keras Applications signature where it applies), and their registry.

Each module holds a family function, which documents the arguments its models share, and the
builders of the family's published models, which fix its configuration:

- `build_resnet` (`resnet`): `ResNet18/50/101`; the CIFAR ResNets (`cifar_resnet`) and the
  ResNeXts (`resnext`) are built by it too.
- `AOGNet` (`aognet`): `AOGNet12M`, `AOGNet40M`, `AOGNetCIFAR`.
- `with_psconv` (`ps_resnet`), `with_treeconv` (`tree_resnet`), `with_tree_attention` and
  `application_with_tree_attention` (`tam_resnet`): a builder above (or a `keras.applications`
  one) with PSConv2D, TreeConv2D or TreeAttention in it: `PSResNet50`, `TreeResNet50`, ...
- `QGN` (`qgn`): the quadtree segmentation network.

Every builder is registered under the name of the model it builds:
`keras_structconv.models.list_models()`, `create_model("ps_resnet20")`, `structconv models`.
The package exports what each builder module lists in its `__all__`, and `QGN`.
"""

from keras_structconv.models import (
    _registry,
    aognet,
    cifar_resnet,
    ps_resnet,
    resnet,
    resnext,
    tam_resnet,
    tree_resnet,
)
from keras_structconv.models._registry import *  # noqa: F403
from keras_structconv.models.aognet import *  # noqa: F403
from keras_structconv.models.cifar_resnet import *  # noqa: F403
from keras_structconv.models.ps_resnet import *  # noqa: F403
from keras_structconv.models.qgn import QGN
from keras_structconv.models.resnet import *  # noqa: F403
from keras_structconv.models.resnext import *  # noqa: F403
from keras_structconv.models.tam_resnet import *  # noqa: F403
from keras_structconv.models.tree_resnet import *  # noqa: F403

__all__ = [
    *_registry.__all__,
    *aognet.__all__,
    *cifar_resnet.__all__,
    *ps_resnet.__all__,
    *resnet.__all__,
    *resnext.__all__,
    *tam_resnet.__all__,
    *tree_resnet.__all__,
    "QGN",  # not `qgn.__all__`: its `qgn_encoder` would hide the module `models.qgn_encoder`
]
