"""The AND-OR grammar (`keras_structconv.aog.grammar`): SPEC node/edge counts, structure,
npaths, laterals, argument errors."""

import collections

import pytest

from keras_structconv.aog import AND, OR, TERMINAL, build_grammar

# SPEC §4 [code]: (N, prune) -> (terminal, and, or)
NODE_COUNTS = {
    (2, None): (3, 1, 3),
    (3, None): (6, 4, 6),
    (4, None): (10, 10, 10),
    (5, None): (15, 20, 15),
    (8, None): (36, 84, 36),
    (3, 1): (5, 2, 5),
    (4, 1): (8, 5, 8),
    (5, 1): (11, 8, 11),
    (8, 1): (24, 26, 24),
}


@pytest.mark.parametrize(("n", "prune"), sorted(NODE_COUNTS, key=str))
def test_node_counts_match_spec(n, prune):
    counts = build_grammar(n, prune=prune).counts()
    assert (counts[TERMINAL], counts[AND], counts[OR]) == NODE_COUNTS[n, prune]


@pytest.mark.parametrize("n", [3, 4, 5, 8])
def test_pruning_modes_mirror_each_other(n):
    """Mode 2 is mode 1 seen in a mirror: same counts, and intervals map by i -> N-1-i."""
    one, two = build_grammar(n, prune=1), build_grammar(n, prune=2)
    assert one.counts() == two.counts()
    mirrored = {(n - 1 - node.end, n - 1 - node.start, node.kind) for node in two}
    assert {(node.start, node.end, node.kind) for node in one} == mirrored


def test_edge_counts_match_spec():
    full, pruned = build_grammar(4), build_grammar(4, prune=1)
    assert (full.num_edges(lateral=False), full.num_edges()) == (40, 53)
    assert (pruned.num_edges(lateral=False), pruned.num_edges()) == (23, 29)
    assert build_grammar(4, lateral=False).num_edges() == 40


def test_pruning_is_reachability_not_a_per_interval_filter():
    """Keeping `left <= right` on every interval of the full grammar would leave 7 AND nodes."""
    full = build_grammar(4)
    filtered = [n for n in full if n.kind == AND and n.split + 1 <= n.length - n.split - 1]
    assert len(filtered) == 7
    pruned = build_grammar(4, prune=1)
    assert pruned.counts()[AND] == 5
    # interval [1,2] is only reachable through the pruned split [0,2|3]
    assert all((n.start, n.end) != (1, 2) for n in pruned)
    assert {n.label for n in pruned if n.kind == AND} == {
        "AND[0|1,3]", "AND[0,1|2,3]", "AND[1|2,3]", "AND[0|1]", "AND[2|3]"
    }


def test_n4_pruned_structure_by_hand():
    g = build_grammar(4, prune=1, lateral=False)
    labels = [n.label for n in g]
    # breadth-first creation order of Algorithm 1
    assert labels == [
        "OR[0,3]", "T[0,3]", "AND[0|1,3]", "AND[0,1|2,3]",
        "OR[0]", "OR[1,3]", "OR[0,1]", "OR[2,3]",
        "T[0]", "T[1,3]", "AND[1|2,3]", "T[0,1]", "AND[0|1]", "T[2,3]", "AND[2|3]",
        "OR[1]", "OR[2]", "OR[3]", "T[1]", "T[2]", "T[3]",
    ]


@pytest.mark.parametrize(("n", "prune"), [(4, None), (5, 1), (8, 2)])
def test_children_are_deterministic_left_to_right(n, prune):
    g = build_grammar(n, prune=prune)
    for node in g:
        kids = [g.nodes[c] for c in node.children]
        if node.kind == AND:
            cut = node.start + node.split
            assert [(k.kind, k.start, k.end) for k in kids] == [
                (OR, node.start, cut), (OR, cut + 1, node.end)
            ]
        elif node.kind == OR:
            terminal = kids[0]
            assert terminal.kind == TERMINAL
            assert (terminal.start, terminal.end) == (node.start, node.end)
            assert [k.split for k in kids[1:]] == sorted(k.split for k in kids[1:])
            assert all(k.kind == AND and (k.start, k.end) == (node.start, node.end)
                       for k in kids[1:])
        else:
            assert kids == []
    assert [n.label for n in g] == [n.label for n in build_grammar(n, prune=prune)]


def _count_paths_by_enumeration(g):
    """Root-to-node path counts by explicit depth-first enumeration of every path."""
    counter = collections.Counter()

    def walk(node_id):
        counter[node_id] += 1
        for child in g.nodes[node_id].children:
            walk(child)

    walk(g.root.id)
    return counter


@pytest.mark.parametrize(("n", "prune"), [(3, None), (4, None), (5, None), (6, 1), (6, 2)])
def test_npaths_equal_enumerated_paths_without_laterals(n, prune):
    g = build_grammar(n, prune=prune)
    counted = _count_paths_by_enumeration(g)
    assert {node.id: node.npaths for node in g} == dict(counted)
    assert build_grammar(n, prune=prune, lateral=False).nodes[-1].npaths == g.nodes[-1].npaths


def test_npaths_by_hand_n3():
    g = build_grammar(3)
    npaths = {node.label: node.npaths for node in g}
    # OR[0] is reached via AND[0|1,2] and via AND[0,1|2] -> OR[0,1] -> AND[0|1]; same for OR[2]
    # and OR[1] (via OR[0,1] and OR[1,2]).
    assert npaths["OR[0]"] == npaths["OR[1]"] == npaths["OR[2]"] == 2
    assert npaths["T[1]"] == 2
    assert npaths["OR[0,1]"] == npaths["OR[1,2]"] == npaths["AND[0|1]"] == 1
    assert g.double_counting_weight(g.find("AND[0|1]").id, g.find("OR[1]").id) == 0.5


def test_lateral_chains_by_hand_n3():
    g = build_grammar(3)
    lateral = {g.nodes[a].label: g.nodes[b].label for a, b in g.lateral_edges()}
    assert lateral == {
        # OR chains flow left to right: each OR node receives its left neighbour
        "OR[1]": "OR[0]",
        "OR[2]": "OR[1]",
        "OR[1,2]": "OR[0,1]",
        # AND chains flow right to left (sorted by the start indexes of the children)
        "AND[0|1]": "AND[1|2]",
        "AND[0|1,2]": "AND[0,1|2]",
    }
    # parents include lateral parents
    assert g.find("OR[1]").id in g.find("OR[0]").parents
    assert g.shares_parent(g.find("OR[1]").id, g.find("OR[0]").id)  # both under AND[0|1]
    assert not g.shares_parent(g.find("OR[1,2]").id, g.find("OR[0,1]").id)
    assert not g.shares_parent(g.find("AND[0|1]").id, g.find("AND[1|2]").id)
    assert g.shares_parent(g.find("AND[0|1,2]").id, g.find("AND[0,1|2]").id)


@pytest.mark.parametrize(("n", "prune"), [(4, None), (4, 1), (8, 1), (8, 2)])
def test_laterals_join_same_kind_same_length_and_skip_the_root(n, prune):
    g = build_grammar(n, prune=prune)
    for receiver, child in g.lateral_edges():
        a, b = g.nodes[receiver], g.nodes[child]
        assert a.kind == b.kind != TERMINAL and a.length == b.length
        assert a.id != g.root.id and b.id != g.root.id
    groups = collections.Counter(
        (node.kind, node.length) for node in g if node.kind != TERMINAL and node is not g.root
    )
    assert len(g.lateral_edges()) == sum(size - 1 for size in groups.values())


@pytest.mark.parametrize(("n", "prune"), [(4, None), (5, 2), (8, 1)])
def test_topological_order_puts_children_and_laterals_first(n, prune):
    g = build_grammar(n, prune=prune)
    order = g.topological_order()
    assert sorted(order) == list(range(len(g)))
    position = {node_id: i for i, node_id in enumerate(order)}
    for parent, child in g.edges(lateral=True):
        assert position[child] < position[parent]
    assert order[-1] == g.root.id


def test_single_primitive_grammar():
    g = build_grammar(1)
    assert [n.label for n in g] == ["OR[0]", "T[0]"]
    assert g.lateral_edges() == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_primitives": 0}, "num_primitives"),
        ({"num_primitives": 2.0}, "num_primitives"),
        ({"num_primitives": 4, "prune": 3}, "prune"),
        ({"num_primitives": 4, "prune": "left"}, "prune"),
        ({"num_primitives": 4, "lateral": "yes"}, "lateral"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"`{match}`.*Received: {match}="):
        build_grammar(**kwargs)


def test_prune_zero_means_full():
    assert build_grammar(4, prune=0).counts() == build_grammar(4).counts()
