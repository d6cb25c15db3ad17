"""QGN decoder training step per propagation scheme, timed interleaved in one process.

`gt` and `pred` (ours) against `all` (reference), the same decoder (Table 7 configuration, same
weights) on real CamVid training labels padded to 384x480, batch 4, ResNet-50-wide encoder
features as inputs; forward + quadtree loss + gradients w.r.t. the weights and the encoder
features. Target (issue 8): gt/all time ratio <= 1.0. Memory needs a fresh process per mode:
see `benchmarks/qgn_decoder_memory.py`. `--quick`: a 64x96 crop, batch 1, a tiny decoder. Needs
the CamVid data (`KERAS_STRUCTCONV_DATA` or ../shared/data).
"""

from benchmarks.qgn_decoder_memory import build_decoder_step
from benchmarks.runner import FORWARD_BACKWARD, register


@register("qgn_decoder", description="QGN decoder train step, gt and pred vs all (CamVid 384x480)")
def qgn_decoder(bench):
    batch_size = 1 if bench.quick else 4
    reference, features, decoder = build_decoder_step(batch_size, 1, "all", quick=bench.quick)
    shape = (features[0].shape[0], features[0].shape[1] * 2, features[0].shape[2] * 2)
    for mode in ("gt", "pred"):
        ours, _, _ = build_decoder_step(batch_size, 1, mode, quick=bench.quick, decoder=decoder)
        yield bench.compare_callables(
            f"QuadtreeDecoder {mode} vs all",
            lambda ours=ours: ours(features),
            lambda: reference(features),
            mode=FORWARD_BACKWARD,
            shape=shape,
        )
