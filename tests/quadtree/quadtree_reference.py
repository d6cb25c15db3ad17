"""Independent NumPy references for the quadtree tests (loops are fine here).

The library builds quadtrees bottom-up (merge 2x2 blocks, level by level, vectorised in TF).
This reference goes top-down instead, straight from the quadtree definition: a root cell (or any
cell) is a leaf when all its pixels hold the same value, else it is composite and its four
children are visited. Both must give the same tree.
"""

import numpy as np

# SPEC 5 [code] test vector: 4 levels, 8x8 label map, 255 = ignore.
SPEC_MAP = np.array(
    [
        [0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 0, 0, 1, 1, 1, 1],
        [0, 0, 0, 0, 1, 1, 2, 2],
        [0, 0, 0, 0, 1, 1, 2, 2],
        [0, 0, 0, 0, 255, 255, 255, 255],
        [0, 0, 0, 0, 255, 255, 255, 255],
        [0, 0, 0, 0, 255, 255, 255, 0],
        [0, 0, 0, 0, 255, 255, 0, 0],
    ],
    np.uint8,
)
SPEC_FULL_RES = np.full((8, 8), -1)
SPEC_FULL_RES[6, 7] = SPEC_FULL_RES[7, 6] = SPEC_FULL_RES[7, 7] = 1
SPEC_LEVELS = [
    SPEC_FULL_RES,
    np.array([[-1, -1, 2, 2], [-1, -1, 2, 3], [-1, -1, -1, -1], [-1, -1, -1, 0]]),
    np.array([[1, 0], [1, 0]]),
    np.array([[0]]),
]


def reference_quadtree(label_map, num_levels):
    """Leaves `[(level, row, col, value)]` and composite nodes `[(level, row, col)]` of one map."""
    root = 2 ** (num_levels - 1)
    height, width = label_map.shape
    leaves, composites = [], []

    def visit(level, row, col):
        size = 2**level
        block = label_map[row * size : (row + 1) * size, col * size : (col + 1) * size]
        first = block[0, 0]
        if level == 0 or np.all(block == first):
            leaves.append((level, row, col, int(first)))
            return
        composites.append((level, row, col))
        for d_row in (0, 1):
            for d_col in (0, 1):
                visit(level - 1, 2 * row + d_row, 2 * col + d_col)

    for row in range(height // root):
        for col in range(width // root):
            visit(num_levels - 1, row, col)
    return leaves, composites


def reference_tpyramid(label_maps, num_levels, ignore_index=255):
    """Training labels per level for a batch `(B, H, W)`: -1 everywhere, then 0 at composite
    nodes and class + 1 at leaves (-1 stays at ignored leaves)."""
    label_maps = np.asarray(label_maps)
    batch, height, width = label_maps.shape
    levels = [
        np.full((batch, height >> level, width >> level), -1, np.int64)
        for level in range(num_levels)
    ]
    for image, label_map in enumerate(label_maps):
        leaves, composites = reference_quadtree(label_map, num_levels)
        for level, row, col in composites:
            levels[level][image, row, col] = 0
        for level, row, col, value in leaves:
            levels[level][image, row, col] = -1 if value == ignore_index else value + 1
    return levels


def reference_counts(label_maps, num_levels):
    """`(leaf_cells, tree_cells)`, int64 `(B, num_levels)` each."""
    label_maps = np.asarray(label_maps)
    leaf_cells = np.zeros((len(label_maps), num_levels), np.int64)
    tree_cells = np.zeros((len(label_maps), num_levels), np.int64)
    for image, label_map in enumerate(label_maps):
        leaves, composites = reference_quadtree(label_map, num_levels)
        for level, *_ in leaves:
            leaf_cells[image, level] += 1
            tree_cells[image, level] += 1
        for level, *_ in composites:
            tree_cells[image, level] += 1
    return leaf_cells, tree_cells


def random_label_maps(rng, batch, height, width, num_classes, ignore_index=255, ignore_rate=0.1):
    """Piecewise-constant random maps with structure at every scale (so that leaves occur at
    every level), some ignore pixels and some isolated noise pixels."""
    maps = np.empty((batch, height, width), np.int64)

    def random_values(shape):
        values = rng.integers(0, num_classes, shape)
        return np.where(rng.random(shape) < ignore_rate, ignore_index, values)

    for image in range(batch):
        coarsest = max(s for s in (32, 16, 8, 4, 2, 1) if height % s == 0 and width % s == 0)
        current = np.kron(
            random_values((height // coarsest, width // coarsest)),
            np.ones((coarsest, coarsest), np.int64),
        )
        scale = coarsest // 2
        while scale >= 1:
            grid = (height // scale, width // scale)
            override = np.kron(rng.random(grid) < 0.15, np.ones((scale, scale), bool))
            values = np.kron(random_values(grid), np.ones((scale, scale), np.int64))
            current = np.where(override, values, current)
            scale //= 2
        maps[image] = current
    return maps


def log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def reference_level_loss(labels, logits):
    """Mean over cells with label != -1 of -log softmax(logits)[label]; 0 when none."""
    labels = np.asarray(labels).reshape(-1)
    logits = np.asarray(logits, np.float64).reshape(labels.size, -1)
    total, count = 0.0, 0
    log_probabilities = log_softmax(logits)
    for cell, label in enumerate(labels):
        if label != -1:
            total -= log_probabilities[cell, label]
            count += 1
    return total / count if count else 0.0


def reference_table_row(label_maps, num_levels):
    """Q_{L-1}..Q_0 (% of pixels) and the ratio (%), from the NumPy reference quadtrees."""
    leaf_cells, _ = reference_counts(label_maps, num_levels)
    leaf_cells = leaf_cells.sum(axis=0)
    pixels = np.asarray(label_maps).size
    percent = [100.0 * leaf_cells[level] * 4**level / pixels for level in range(num_levels)]
    return percent[::-1], 100.0 * leaf_cells.sum() / pixels


def reference_original_figures(padded_maps, padding, num_levels):
    """Q_l over the original pixels and leaves holding one, from the reference quadtrees."""
    (top, bottom), (left, right) = padding
    height, width = padded_maps.shape[1:]
    original = np.zeros((height, width), bool)
    original[top : height - bottom, left : width - right] = True
    pixels = np.zeros(num_levels, np.int64)
    cells = np.zeros(num_levels, np.int64)
    for label_map in padded_maps:
        for level, row, col, _ in reference_quadtree(label_map, num_levels)[0]:
            size = 2**level
            inside = original[row * size : (row + 1) * size, col * size : (col + 1) * size].sum()
            pixels[level] += inside
            cells[level] += inside > 0
    return pixels, cells
