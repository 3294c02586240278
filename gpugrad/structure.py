"""Nested structures ("trees") of lists, tuples, namedtuples and dicts, in the manner of
jax.tree_util and tf.nest.

    leaves, treedef = flatten(tree)      # the leaves in order, and the tree's shape
    tree = unflatten(treedef, leaves)    # a tree of that shape holding these leaves

Containers are lists, tuples and dicts, their subclasses (namedtuples, OrderedDict,
defaultdict) included; everything else is a leaf: tensors, numbers, None, strings, arrays,
objects. Dict entries are visited in insertion order (tf.nest sorts them by key), so the
treedef records the keys in that order and {"a": x, "b": y} and {"b": y, "a": x} are two
structures. A treedef is hashable and compares by value: two trees of the same container
types, lengths and keys have equal treedefs, which makes one a cache key. `unflatten`
rebuilds each container as its own type (a namedtuple as that namedtuple, an OrderedDict
as an OrderedDict), as tf.nest does.

Trees must not contain themselves: a list holding itself recurses without end.

Nothing of gpugrad, numpy or cupy is imported here: the module sits at the bottom of the
import graph, and callers decide what their leaves must be.
"""
import collections
import itertools
import operator

__all__ = ["TreeDef", "LEAF", "flatten", "unflatten", "builder", "flatten_up_to", "paths"]

_CONTAINERS = (list, tuple, dict)
_new = tuple.__new__
_END = object()


class TreeDef(tuple):
    """The shape of a tree: `kind` (the container's type; None for a leaf), `keys` (a
    dict's keys in order; None otherwise) and `children` (a TreeDef per entry).

    A tuple underneath, (kind, meta, children, flat), so that hashing and comparing it (as
    part of a cache key) run at C speed: meta is None for a list or tuple, the keys for a
    dict, (keys, default_factory) for a defaultdict; flat says that every child is a leaf.
    Make one with `flatten`, not by hand."""

    __slots__ = ()

    kind = property(operator.itemgetter(0), doc="The container type, or None for a leaf.")
    children = property(operator.itemgetter(2), doc="A TreeDef per entry of the container.")

    @property
    def keys(self):
        """A dict's keys, in order; None for a list, a tuple or a leaf."""
        return _keys(self)

    @property
    def is_leaf(self):
        return self[0] is None

    @property
    def num_leaves(self):
        return 1 if self[0] is None else sum(child.num_leaves for child in self[2])

    def __repr__(self):
        return f"TreeDef({_describe(self)})"


LEAF = _new(TreeDef, (None, None, (), True))


def _keys(node):
    kind, meta = node[0], node[1]
    if kind is None or meta is None:
        return None
    return meta[0] if issubclass(kind, collections.defaultdict) else meta


def _describe(node):
    kind = node[0]
    if kind is None:
        return "*"
    keys = _keys(node)
    if keys is None:
        inner = ", ".join(map(_describe, node[2]))
        return f"{kind.__name__}[{inner}]"
    inner = ", ".join(f"{key!r}: {_describe(child)}" for key, child in zip(keys, node[2]))
    return f"{kind.__name__}{{{inner}}}"


# ---------------------------------------------------------------------------------------
# flatten

# Containers and leaves are told apart by type(x), not isinstance(x, ...) (slow for a
# leaf, which it asks for its __class__), with the answer for each type kept (the classes
# are held, up to _KEPT_TYPES of them).
_CONTAINER_TYPES = {list, tuple, dict}
_LEAF_TYPES = set()
_KEPT_TYPES = 4096  # beyond this many (classes made on the fly), types are asked afresh


def _is_container(kind):
    if kind in _CONTAINER_TYPES:
        return True
    if kind in _LEAF_TYPES:
        return False
    found = issubclass(kind, _CONTAINERS)
    if len(_CONTAINER_TYPES) + len(_LEAF_TYPES) < _KEPT_TYPES:
        (_CONTAINER_TYPES if found else _LEAF_TYPES).add(kind)
    return found


_FLAT = {}  # (kind, n): the TreeDef of a list or tuple (of type kind) of n leaves


def _flat(kind, length):
    treedef = _new(TreeDef, (kind, None, (LEAF,) * length, True))
    if len(_FLAT) < _KEPT_TYPES:
        _FLAT[kind, length] = treedef
    return treedef


def flatten(tree):
    """(leaves, treedef): the leaves of `tree` in order (lists and tuples by position,
    dicts in insertion order, depth first) and its TreeDef. A leaf alone gives ([tree], LEAF)."""
    kind = type(tree)
    if (kind is list or kind is tuple) and _LEAF_TYPES.issuperset(map(type, tree)):  # as _flatten would
        return list(tree), _FLAT.get((kind, len(tree))) or _flat(kind, len(tree))
    if kind in _CONTAINER_TYPES or (kind not in _LEAF_TYPES and _is_container(kind)):
        leaves = []
        return leaves, _flatten(tree, kind, leaves)
    return [tree], LEAF


def _flatten(tree, kind, leaves):
    if kind is list or kind is tuple:
        values, meta = tree, None
    elif kind is dict:
        values, meta = tree.values(), tuple(tree)
    elif issubclass(kind, dict):
        values, meta = tree.values(), tuple(tree)
        if issubclass(kind, collections.defaultdict):
            meta = (meta, tree.default_factory)
    else:  # a list or tuple subclass
        values, meta = tree, None
    children, flat = [], True
    for item in values:
        item_kind = type(item)
        if item_kind in _CONTAINER_TYPES or (item_kind not in _LEAF_TYPES and _is_container(item_kind)):
            children.append(_flatten(item, item_kind, leaves))
            flat = False
        else:
            leaves.append(item)
            children.append(LEAF)
    if flat and meta is None:
        return _FLAT.get((kind, len(children))) or _flat(kind, len(children))
    return _new(TreeDef, (kind, meta, tuple(children), flat))


# ---------------------------------------------------------------------------------------
# unflatten

def unflatten(treedef, leaves):
    """The tree of shape `treedef` holding `leaves` (an iterable, in the order `flatten`
    lists them); each container is built anew, as its own type. Raises ValueError unless
    there are exactly treedef.num_leaves leaves."""
    kind, meta, children, flat = treedef
    if flat and type(leaves) is list:  # a leaf, or a container of leaves only: no walk
        if len(leaves) != (len(children) if kind is not None else 1):
            _count_error(treedef, leaves, None)
        if kind is None:
            return leaves[0]
        if kind is list:
            return leaves[:]
        if kind is tuple:
            return tuple(leaves)
        if kind is dict:
            return dict(zip(meta, leaves))
        return _maker(kind, meta)(leaves)
    items = iter(leaves)
    try:
        tree = next(items) if kind is None else _build(treedef, items)
    except StopIteration:
        _count_error(treedef, leaves, "fewer")
    if next(items, _END) is not _END:
        _count_error(treedef, leaves, "more")
    return tree


def _count_error(treedef, leaves, which, what="unflatten"):
    got = len(leaves) if hasattr(leaves, "__len__") else which
    raise ValueError(f"{what}: {treedef!r} holds {treedef.num_leaves} leaves, got {got}") from None


def _build(node, items):
    kind, meta, children, flat = node
    if flat:
        values = list(itertools.islice(items, len(children)))
        if len(values) != len(children):
            raise StopIteration
    else:
        values = [next(items) if child[0] is None else _build(child, items) for child in children]
    if kind is list:
        return values
    if kind is tuple:
        return tuple(values)
    if kind is dict:
        return dict(zip(meta, values))
    return _maker(kind, meta)(values)


def _maker(kind, meta):
    """The function making a container of `kind` (with `meta` as a TreeDef holds it) from
    the list of its values, in order."""
    if kind is list:
        return list
    if kind is tuple:
        return tuple
    if meta is None:  # a list or tuple subclass
        return kind._make if hasattr(kind, "_fields") else kind
    if kind is dict:
        return lambda values: dict(zip(meta, values))
    if issubclass(kind, collections.defaultdict):
        keys, factory = meta
        return lambda values: kind(factory, zip(keys, values))
    return lambda values: kind(zip(meta, values))


def builder(treedef, leaf_fns):
    """A function `build(x)` making the tree of shape `treedef` whose i-th leaf is
    `leaf_fns[i](x)`: unflatten(treedef, [f(x) for f in leaf_fns]) with the walk of the
    treedef done once, here, for a structure that is built many times (as a replay's result).
    Raises ValueError unless there is one function per leaf of treedef."""
    fns = iter(leaf_fns)
    try:
        build = _builder(treedef, fns)
    except StopIteration:
        _count_error(treedef, leaf_fns, "fewer", "builder")
    if next(fns, _END) is not _END:
        _count_error(treedef, leaf_fns, "more", "builder")
    return build


def _builder(node, fns):
    kind, meta, children, _ = node
    if kind is None:
        return next(fns)
    parts = [_builder(child, fns) for child in children]
    if kind is list:
        return lambda x: [part(x) for part in parts]
    make = _maker(kind, meta)
    return lambda x: make([part(x) for part in parts])


# ---------------------------------------------------------------------------------------
# Walking a treedef alongside another tree

def flatten_up_to(treedef, tree):
    """The subtrees of `tree` at the places of treedef's leaves, in order (tf.nest's
    flatten_up_to): `tree` must have treedef's containers down to those places, anything
    below them is taken whole. Where treedef has a list or tuple, `tree` must have a list
    or tuple (of either type) of the same length; where it has a dict, `tree` must have
    an entry for each of its keys (others are ignored). Raises ValueError where it does not."""
    if treedef[0] is None:
        return [tree]
    out = []
    _up_to(treedef, tree, out, ())
    return out


def _up_to(node, tree, out, path):
    kind, meta, children, _ = node
    keys = _keys(node)
    if keys is None:
        if not isinstance(tree, (list, tuple)) or len(tree) != len(children):
            raise ValueError(f"expected a list or tuple of {len(children)} entries{_at(path)}, got {tree!r}")
        pairs = zip(range(len(children)), tree, children)
    else:
        try:
            values = [tree[key] for key in keys]
        except (KeyError, IndexError, TypeError):
            raise ValueError(f"expected a dict with the keys {list(keys)!r}{_at(path)}, got {tree!r}") from None
        pairs = zip(keys, values, children)
    for key, value, child in pairs:
        if child[0] is None:
            out.append(value)
        else:
            _up_to(child, value, out, path + (key,))


def _at(path):
    return f" at {''.join(f'[{key!r}]' for key in path)}" if path else ""


def paths(treedef):
    """The place of each leaf of `treedef`, in leaf order: a tuple of the list or tuple
    positions and dict keys that lead to it from the root (() for a lone leaf)."""
    out = []
    _paths(treedef, (), out)
    return out


def _paths(node, prefix, out):
    if node[0] is None:
        out.append(prefix)
        return
    keys = _keys(node)
    for key, child in zip(range(len(node[2])) if keys is None else keys, node[2]):
        _paths(child, prefix + (key,), out)
