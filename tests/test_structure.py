"""gpugrad.structure: flatten a nested structure of lists, tuples, namedtuples and dicts into
its leaves and a hashable treedef, and build it back, as GradientTape and gg.function do."""
import ast
import collections
import pathlib
import pickle
import sys

import pytest

from gpugrad import structure

Point = collections.namedtuple("Point", "x y")


class Opaque:
    """A leaf that is neither a number nor a container."""


NESTED = [1, (2.0, Point(3, {"b": 4, "a": [5, None]})), "six", {"k": (7,)}]


def _same_types(a, b):
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _same_types(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same_types(x, y)


@pytest.mark.parametrize("tree", [
    NESTED,
    [],
    (),
    {},
    [[], (), {}],
    Point(1, 2),
    {"z": 1, "a": 2, "m": [3]},
    collections.OrderedDict([("b", 1), ("a", (2, 3))]),
    ([1], [[2]], [[[3]]]),
], ids=repr)
def test_round_trip_keeps_values_and_container_types(tree):
    leaves, treedef = structure.flatten(tree)
    assert len(leaves) == treedef.num_leaves
    rebuilt = structure.unflatten(treedef, leaves)
    assert rebuilt == tree
    _same_types(rebuilt, tree)


def test_leaves_come_depth_first_in_order():
    leaves, treedef = structure.flatten(NESTED)
    assert leaves == [1, 2.0, 3, 4, 5, None, "six", 7]
    assert structure.paths(treedef) == [(0,), (1, 0), (1, 1, 0), (1, 1, 1, "b"), (1, 1, 1, "a", 0),
                                        (1, 1, 1, "a", 1), (2,), (3, "k", 0)]


def test_a_lone_leaf_is_its_own_tree():
    for leaf in (3, None, "text", b"bytes", Opaque()):
        leaves, treedef = structure.flatten(leaf)
        assert leaves == [leaf] and treedef is structure.LEAF and treedef.is_leaf
        assert structure.unflatten(treedef, leaves) is leaf
        assert structure.paths(treedef) == [()]


def test_strings_and_none_are_leaves_not_containers():
    leaves, treedef = structure.flatten(["ab", None, b"cd"])
    assert leaves == ["ab", None, b"cd"] and treedef.num_leaves == 3


def test_empty_containers_have_no_leaves_but_keep_their_place():
    leaves, treedef = structure.flatten({"a": [], "b": (), "c": {}, "d": 1})
    assert leaves == [1]
    assert structure.unflatten(treedef, [9]) == {"a": [], "b": (), "c": {}, "d": 9}
    assert structure.flatten([])[1] != structure.flatten(())[1] != structure.flatten({})[1]


def test_unflatten_takes_new_leaves_and_builds_new_containers():
    tree = {"w": [1, 2], "b": Point(3, 4)}
    leaves, treedef = structure.flatten(tree)
    rebuilt = structure.unflatten(treedef, [x * 10 for x in leaves])
    assert rebuilt == {"w": [10, 20], "b": Point(30, 40)} and type(rebuilt["b"]) is Point
    same = structure.unflatten(treedef, leaves)
    assert same == tree and same is not tree and same["w"] is not tree["w"]
    assert structure.unflatten(treedef, iter(leaves)) == tree  # any iterable of leaves
    assert structure.unflatten(treedef, tuple(leaves)) == tree


def test_namedtuples_keep_their_type_and_fields():
    Pair = collections.namedtuple("Pair", "first second")
    tree = [Pair(Point(1, 2), 3), Point(x=[4], y={"q": 5})]
    leaves, treedef = structure.flatten(tree)
    assert leaves == [1, 2, 3, 4, 5]
    rebuilt = structure.unflatten(treedef, leaves)
    assert type(rebuilt[0]) is Pair and type(rebuilt[0].first) is Point and rebuilt[1].y == {"q": 5}
    assert treedef != structure.flatten([(Point(1, 2), 3), Point(x=[4], y={"q": 5})])[1]  # a tuple is not a Pair


def test_dicts_are_taken_in_insertion_order_and_the_order_is_part_of_the_structure():
    ab = {"a": 1, "b": 2}
    ba = {"b": 2, "a": 1}
    leaves_ab, def_ab = structure.flatten(ab)
    leaves_ba, def_ba = structure.flatten(ba)
    assert leaves_ab == [1, 2] and leaves_ba == [2, 1]
    assert def_ab != def_ba
    assert list(structure.unflatten(def_ba, leaves_ba)) == ["b", "a"]
    assert def_ab.keys == ("a", "b")


def test_keys_of_any_hashable_type_need_no_ordering():
    tree = {2: "int", "s": "str", (1, 2): "tuple", None: "none"}
    leaves, treedef = structure.flatten(tree)
    assert leaves == ["int", "str", "tuple", "none"]
    assert structure.unflatten(treedef, leaves) == tree


def test_dict_subclasses_keep_their_type_defaultdicts_their_factory():
    ordered = collections.OrderedDict([("b", 1), ("a", 2)])
    default = collections.defaultdict(list, {"x": 3})
    rebuilt = structure.unflatten(*reversed(structure.flatten([ordered, default])))
    assert type(rebuilt[0]) is collections.OrderedDict and list(rebuilt[0].items()) == [("b", 1), ("a", 2)]
    assert type(rebuilt[1]) is collections.defaultdict and rebuilt[1].default_factory is list
    assert rebuilt[1]["missing"] == []
    assert structure.flatten(default)[1].keys == ("x",)
    assert structure.flatten(default)[1] != structure.flatten(collections.defaultdict(set, {"x": 3}))[1]
    assert structure.flatten(ordered)[1] != structure.flatten(dict(ordered))[1]


def test_list_and_tuple_subclasses_keep_their_type():
    class Stack(list):
        pass

    class Row(tuple):
        pass

    rebuilt = structure.unflatten(*reversed(structure.flatten([Stack([1, 2]), Row((3,))])))
    assert type(rebuilt[0]) is Stack and rebuilt[0] == [1, 2]
    assert type(rebuilt[1]) is Row and rebuilt[1] == (3,)


def test_treedefs_of_equal_structures_are_equal_and_hash_alike_whatever_the_leaves():
    first = structure.flatten([Opaque(), {"a": (1, 2)}])[1]
    second = structure.flatten(["x", {"a": (None, 3.5)}])[1]
    assert first == second and hash(first) == hash(second)
    cache = {first: "plan"}
    assert cache[second] == "plan"


@pytest.mark.parametrize("other", [
    [1, {"a": (1, 2, 3)}],        # a longer tuple
    [1, {"a": [1, 2]}],           # a list for a tuple
    [1, {"b": (1, 2)}],           # another key
    (1, {"a": (1, 2)}),           # a tuple for a list
    [1, {"a": (1, 2)}, 3],        # one more entry
    [[1], {"a": (1, 2)}],         # a container for a leaf
    [1, collections.OrderedDict(a=(1, 2))],
], ids=repr)
def test_treedefs_of_different_structures_differ(other):
    reference = structure.flatten([1, {"a": (1, 2)}])[1]
    assert structure.flatten(other)[1] != reference
    assert len({reference, structure.flatten(other)[1]}) == 2


def test_a_treedef_is_the_same_whether_its_leaf_types_were_seen_before_or_not():
    class Fresh:  # a type met for the first time: the first flatten takes the long way
        pass

    first = structure.flatten([Fresh(), Fresh()])[1]
    second = structure.flatten([Fresh(), Fresh()])[1]
    assert first == second and hash(first) == hash(second)
    nested_first = structure.flatten({"a": [Fresh()], "b": Fresh()})[1]
    assert nested_first == structure.flatten({"a": [Fresh()], "b": Fresh()})[1]


def test_treedef_describes_itself_and_counts_its_leaves():
    treedef = structure.flatten(NESTED)[1]
    assert repr(treedef) == ("TreeDef(list[*, tuple[*, Point[*, dict{'b': *, 'a': list[*, *]}]], *, "
                             "dict{'k': tuple[*]}])")
    assert treedef.num_leaves == 8 and not treedef.is_leaf
    assert treedef.kind is list and treedef.keys is None and len(treedef.children) == 4
    assert treedef.children[2] is structure.LEAF or treedef.children[2].is_leaf
    assert structure.LEAF.num_leaves == 1


def test_a_treedef_pickles():
    treedef = structure.flatten([Point(1, 2), {"a": 3}])[1]
    again = pickle.loads(pickle.dumps(treedef))
    assert again == treedef
    assert structure.unflatten(again, [1, 2, 3]) == [Point(1, 2), {"a": 3}]


@pytest.mark.parametrize("leaves, got", [([1, 2], "2"), ([1, 2, 3, 4, 5], "5"), ([], "0")])
def test_unflatten_with_the_wrong_number_of_leaves_says_how_many_it_needs(leaves, got):
    treedef = structure.flatten([1, (2, {"a": 3})])[1]
    with pytest.raises(ValueError, match=rf"unflatten: TreeDef\(list\[\*, tuple\[\*, dict\{{'a': \*\}}\]\]\) "
                                         rf"holds 3 leaves, got {got}$"):
        structure.unflatten(treedef, leaves)


@pytest.mark.parametrize("leaves, got", [([1], "fewer"), ([1, 2, 3], "more")])
def test_unflatten_from_an_iterator_with_the_wrong_number_of_leaves(leaves, got):
    treedef = structure.flatten([1, 2])[1]
    with pytest.raises(ValueError, match=rf"holds 2 leaves, got {got}$"):
        structure.unflatten(treedef, iter(leaves))


@pytest.mark.parametrize("tree", [5, [5], {"a": [5]}], ids=repr)
def test_unflatten_a_flat_structure_with_the_wrong_number_of_leaves(tree):
    treedef = structure.flatten(tree)[1]
    for leaves in ([], [1, 2]):
        with pytest.raises(ValueError, match=r"holds 1 leaves, got"):
            structure.unflatten(treedef, leaves)


def test_builder_builds_the_structure_from_one_function_per_leaf():
    tree = (1, [2, {"s": 3, "n": Point(4, 5)}])
    leaves, treedef = structure.flatten(tree)
    build = structure.builder(treedef, [lambda x, i=i: x * 10 + i for i in range(len(leaves))])
    assert build(1) == (10, [11, {"s": 12, "n": Point(13, 14)}])
    built = build(2)
    _same_types(built, tree)
    assert build(2) is not built and build(2)[1] is not built[1]  # fresh containers each call
    assert structure.builder(structure.LEAF, [abs])(-3) == 3
    with pytest.raises(ValueError, match=r"builder: .* holds 5 leaves, got 4"):
        structure.builder(treedef, [abs] * 4)
    with pytest.raises(ValueError, match=r"builder: .* holds 5 leaves, got 6"):
        structure.builder(treedef, [abs] * 6)


def test_flatten_up_to_takes_whatever_lies_at_the_leaves_places():
    treedef = structure.flatten([1, {"a": 2, "b": (3, 4)}])[1]
    tree = ([[1, 2]], {"a": "x", "b": [None, {"deep": 0}], "extra": 9})
    assert structure.flatten_up_to(treedef, tree) == [[[1, 2]], "x", None, {"deep": 0}]
    assert structure.flatten_up_to(structure.LEAF, [1, [2]]) == [[1, [2]]]


@pytest.mark.parametrize("tree, message", [
    ([1], r"expected a list or tuple of 2 entries, got \[1\]"),
    (5, r"expected a list or tuple of 2 entries, got 5"),
    ([1, {"b": (3, 4)}], r"expected a dict with the keys \['a', 'b'\] at \[1\], got \{'b': \(3, 4\)\}"),
    ([1, {"a": 2, "b": (3,)}], r"expected a list or tuple of 2 entries at \[1\]\['b'\], got \(3,\)"),
])
def test_flatten_up_to_names_the_place_of_a_mismatch(tree, message):
    treedef = structure.flatten([1, {"a": 2, "b": (3, 4)}])[1]
    with pytest.raises(ValueError, match=message):
        structure.flatten_up_to(treedef, tree)


def test_the_module_imports_only_the_standard_library():
    tree = ast.parse(pathlib.Path(structure.__file__).read_text())
    names = {alias.name.partition(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    assert not any(isinstance(node, ast.ImportFrom) for node in ast.walk(tree))
    assert names and names <= set(sys.stdlib_module_names)


# ---------------------------------------------------------------------------------------
# Through its callers: GradientTape and gg.function

def test_tape_gradient_comes_back_in_the_sources_structure_and_types():
    import numpy as np

    import gpugrad as gg
    w, b = gg.Variable([1.0, 2.0]), gg.Variable(3.0)
    sources = collections.OrderedDict([("w", w), ("rest", [Point(b, w)])])
    with gg.GradientTape() as tape:
        y = gg.reduce_sum(w * b)
    grads = tape.gradient(y, sources)
    assert type(grads) is collections.OrderedDict and list(grads) == ["w", "rest"]
    assert type(grads["rest"]) is list and type(grads["rest"][0]) is Point
    np.testing.assert_allclose(grads["w"].numpy(), [3.0, 3.0])
    np.testing.assert_allclose(grads["rest"][0].x.numpy(), 3.0)


def test_tape_output_gradients_must_match_the_targets_structure():
    import gpugrad as gg
    x = gg.Variable([1.0, 2.0])
    with gg.GradientTape(persistent=True) as tape:
        ys = {"a": x * 2.0, "b": [x * 3.0]}
    grad = tape.gradient(ys, x, output_gradients={"a": [1.0, 0.0], "b": [[0.0, 1.0]]})
    assert grad.numpy().tolist() == [2.0, 3.0]
    with pytest.raises(ValueError, match=r"output_gradients must match the structure of the targets: expected a "
                                         r"list or tuple of 1 entries at \['b'\]"):
        tape.gradient(ys, x, output_gradients={"a": [1.0, 0.0], "b": [0.0, 1.0]})
    with pytest.raises(TypeError, match=r"gradient sources must be Tensors or Variables .*got float"):
        tape.gradient(ys, [x, 1.0])


def test_gg_function_keys_calls_by_structure_and_names_nested_numbers():
    import warnings

    import gpugrad as gg
    seen = []

    @gg.function
    def f(tree):
        seen.append(type(tree["p"]))
        return tree["p"].x * tree["p"].y

    x = gg.constant([1.0, 2.0])
    for scale in (2.0, 3.0):
        assert f({"p": Point(x, gg.constant(scale))}).numpy().tolist() == [scale, 2 * scale]
    assert len(f._plans) == 1 and seen == [Point]
    f({"p": Point(x, gg.constant(1.0)), "q": None})  # another structure: another plan
    assert len(f._plans) == 2

    g = gg.function(lambda x, tree: x * float(tree[1]["lr"]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g(x, (None, {"lr": 0.5}))
    assert any("the Python number argument 1[1]['lr'] was used" in str(w.message) for w in caught)


def test_gg_function_results_have_the_same_types_on_capture_and_replay():
    import gpugrad as gg
    f = gg.function(lambda x, s: {"pair": Point(x * 2.0, s), "ordered": collections.OrderedDict(a=[x + 1.0])})
    x = gg.constant(1.0)
    first, second = f(x, 2.0), f(x, 3.0)
    for result, s in ((first, 2.0), (second, 3.0)):
        assert type(result) is dict and type(result["pair"]) is Point and result["pair"].y == s
        assert type(result["pair"].y) is float
        assert type(result["ordered"]) is collections.OrderedDict and type(result["ordered"]["a"]) is list
        assert float(result["ordered"]["a"][0]) == 2.0
