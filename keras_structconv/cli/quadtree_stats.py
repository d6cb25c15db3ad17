"""`structconv quadtree-stats`: quadtree statistics of a segmentation dataset (QGN, Table 5).

Per split: % of pixels whose quadtree leaf is at each level Q_{L-1}..Q_0 and the quadtree/dense
memory ratio (leaf cells / pixels), on label maps padded with void to a multiple of
2^(levels-1).
"""

from __future__ import annotations

import argparse

from keras_structconv.cli._common import add_subcommand, positive_int
from keras_structconv.quadtree.stats import (
    CAMVID_NUM_CLASSES,
    CAMVID_SPLITS,
    describe_padding,
    format_statistics_table,
    load_camvid_label_maps,
    quadtree_statistics,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(subparsers, "quadtree-stats", run, __doc__)
    parser.add_argument("--data", choices=["camvid"], default="camvid", help="dataset")
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder holding the dataset's npz files (default: $KERAS_STRUCTCONV_DATA/camvid, "
        "else ../shared/data/camvid beside the repository)",
    )
    parser.add_argument(
        "--levels", type=positive_int, default=6, help="quadtree levels (default 6)"
    )
    parser.add_argument(
        "--splits", nargs="+", choices=list(CAMVID_SPLITS), default=list(CAMVID_SPLITS)
    )
    parser.add_argument(
        "--padding",
        choices=["end", "symmetric"],
        default="end",
        help="where the void padding goes: 'end' = bottom/right (default), 'symmetric' = split",
    )
    parser.add_argument(
        "--max-images",
        type=positive_int,
        default=None,
        help="use only the first N maps of each split",
    )
    parser.add_argument(
        "--show-active",
        action="store_true",
        help="also print the fraction of sites present in the quadtree at each level",
    )


def run(args: argparse.Namespace) -> int:
    """Prints the table; returns the exit status (0)."""
    statistics = []
    original_size = None
    for split in args.splits:
        labels = load_camvid_label_maps(split, args.data_dir)
        if args.max_images is not None:
            labels = labels[: args.max_images]
        original_size = labels.shape[1:]
        statistics.append(
            quadtree_statistics(
                labels,
                num_levels=args.levels,
                num_classes=CAMVID_NUM_CLASSES,
                padding_placement=args.padding,
                name=split,
            )
        )
    root = 2 ** (args.levels - 1)
    print(
        f"CamVid quadtree statistics, {args.levels} levels (root cells {root}x{root}); "
        f"{describe_padding(original_size, statistics[0])}; void is a leaf value.\n"
        "Q_l = % of pixels whose leaf is at level l; ratio = leaf cells / pixels."
    )
    print("\nOver the pixels of the padded maps:")
    print(format_statistics_table(statistics, "padded", show_active=args.show_active))
    if any(sum(sum(side) for side in stats.padding) for stats in statistics):
        print("\nOver the original pixels (padding excluded; ratio: leaves holding one of them):")
        print(format_statistics_table(statistics, "original"))
    return 0
