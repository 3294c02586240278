"""gg.save, gg.restore and gg.list_checkpoint: Variables and optimizer state in safetensors files.

The format itself is the safetensors package's business; this module only names values,
moves them to and from the host, checks them and makes writes atomic. No math here.
"""
import errno
import json
import os
import re
import shutil
import socket
import uuid
import warnings
import zlib
from typing import NamedTuple

import numpy
from safetensors import SafetensorError, safe_open
from safetensors import numpy as _safetensors_numpy

from ._version import __version__
from .module import Module, _walk
from .optimizers import Optimizer
from .tensor import Variable

# safetensors dtype codes as NumPy dtype names: every dtype a gpugrad Variable can have
# and safetensors can store (complex128 is not among them).
_DTYPE_NAMES = {"BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16", "I32": "int32",
                "U32": "uint32", "I64": "int64", "U64": "uint64", "F16": "float16", "F32": "float32",
                "F64": "float64", "C64": "complex64"}

_BUILD_HINT = ("\nOptimizer state does not line up: restore builds a fresh optimizer's state only for variables "
               "of the object whose slots the file holds; otherwise call optimizer.build(var_list) with the "
               "variables it was saved with, before gg.restore.")


# A save writes its file in a staging directory next to the checkpoint, named
# ".<name>.gpugrad-tmp-<host>-<pid>-<random>" (host: a CRC of this machine's name, pid: the
# saving process), and renames it over the checkpoint. A save killed mid-write leaves its
# staging directory behind; the next save or restore of that path removes the ones whose
# process is gone. Only this machine's are judged, as a pid means nothing on another machine
# sharing the directory (over NFS, say), and a pid that is alive again (reused) keeps its
# directory until it is not. safetensors itself writes to a temporary file of its own
# (".tmpXXXXXX", mode 0600) in the directory it writes to: here that is the staging directory.
_HOST = format(zlib.crc32(socket.gethostname().encode()), "08x")
_STAGING_TAIL = re.compile(r"(\d{1,9})-[0-9a-f]{8}")  # "<pid>-<random>"
_OS_ERROR = re.compile(r"\(os error (\d+)\)")  # how safetensors' Rust errors give their errno


def _join(path, key):
    return f"{path}/{key}" if path else str(key)


def _optimizers(obj):
    """(path, Optimizer) pairs under `obj`, along the paths `module._walk` takes."""
    return list(_walk(obj, "", set(), Optimizer))


def _check_savable(obj, what):
    if not isinstance(obj, (Module, Variable, dict, list, tuple, Optimizer)):
        raise TypeError(f"{what}: expected a gg.Module, gg.Variable, optimizer, dict, list or tuple, "
                        f"got {type(obj).__name__}")


def _flatten(obj, what, weights_only=False):
    """{name: Variable, or the Optimizer whose `iterations` the name holds}, in saving order,
    and {path: Optimizer} of the optimizers in `obj`; with `weights_only`, the Variables
    `obj` reaches alone (no optimizer state)."""
    variable_paths = {}
    entries = {}
    optimizers = {}

    def add(name, target):
        if name in entries:
            raise ValueError(f"{what}: two values would be saved under the name {name!r}")
        entries[name] = target

    for path, var in _walk(obj, "", set()):
        variable_paths[var] = path
        add(path, var)
    if weights_only:
        return entries, optimizers
    for path, opt in _optimizers(obj):
        optimizers[path] = opt
        add(_join(path, "iterations"), opt)
        for index, var in enumerate(opt.variables):
            base = variable_paths.get(var)
            if base is None:
                base = _join(path, f"variables/{index}")
                add(base, var)
            for slot, slot_variable in opt.slots(var).items():
                add(_join(path, f"{slot}/{base}"), slot_variable)
    return entries, optimizers


def _in_section(name, path, slots):
    """Whether `name` is optimizer state that an optimizer at `path` with these slot names saves."""
    return name == _join(path, "iterations") or any(name.startswith(_join(path, f"{key}/"))
                                                    for key in ("variables", *slots))


def _expected(target):
    """(shape, dtype name) of what a flattened entry holds."""
    if isinstance(target, Optimizer):
        return (), "int64"
    return tuple(target.shape), target.dtype.name


def _describe(shape, dtype):
    return f"shape {shape} {dtype}"


def save(path, obj, *, weights_only=False):
    """Write `obj`'s Variables (and optimizer state) to a safetensors file at `path`, atomically.

    `obj` is a gg.Module, a gg.Variable, an optimizer, or a dict, list or tuple of these
    (nested). Names are the attribute, key and index paths joined by "/", as
    `Module.named_variables` gives them: `{"model": m}` saves `model/layers/0/kernel`; a
    lone Variable has the empty path, so its name is "" (it restores into any Variable of
    its shape and dtype).

    An optimizer at path P keeps its state under P: `P/iterations` (a 0-d int64) and each
    slot of a variable it has state for as `P/<slot>/<variable path>` (e.g.
    `optimizer/m/model/layers/0/kernel` for Adam), where the variable path is the one the
    variable has elsewhere in `obj`; a variable of the optimizer found nowhere else in
    `obj` is saved itself at `P/variables/<i>` (i its index in `optimizer.variables`), its
    slots at `P/<slot>/P/variables/<i>`. The metadata records each optimizer's path, class
    name and slot names, so that `gg.restore` can tell optimizer state from weights.
    With `weights_only=True` no optimizer state is written: only the Variables `obj`
    reaches through Modules and containers (optimizers in `obj` are passed over), a file
    for inference or fine-tuning. Two values under one name raise ValueError; a dtype
    safetensors cannot store (complex128) raises TypeError.

    Values are copied to the host. The file is written in a staging directory beside `path`
    (`.<name>.gpugrad-tmp-<host>-<pid>-<random>`), flushed to disk and renamed over `path`,
    and the directory is flushed too, so a crash or an error leaves the previous file at
    `path` untouched; the staging directory of a save killed mid-write is removed by the
    next save or restore of `path` once its process is gone. The file keeps the permission
    bits of the file it replaces; a new one gets those open() gives (0o666 less the umask).
    Errors name `path`: IsADirectoryError for a directory, FileNotFoundError for a missing
    parent directory, and an OSError of the failure's kind (PermissionError, ...) when the
    write fails, with what to do about a read-only directory or a full disk. The metadata
    holds {"format": "gpugrad", "gpugrad_version": ..., "optimizers": <JSON>}; any
    safetensors reader (`safetensors.numpy.load_file`) reads the file.

    Departures from TensorFlow: tf.train.Checkpoint writes its own format (an index plus
    data shards) keyed by object-graph paths; gpugrad writes one safetensors file keyed by
    the paths above, and saves no learning rate or other hyperparameters.
    """

    _check_savable(obj, "save")
    entries, optimizers = _flatten(obj, "save", weights_only)
    tensors = {}
    for name, target in entries.items():
        if isinstance(target, Optimizer):
            tensors[name] = numpy.array(target.iterations, dtype=numpy.int64)
            continue
        array = numpy.asarray(target.numpy(), order="C")
        if array.dtype.name not in _DTYPE_NAMES.values():
            raise TypeError(f"save: Variable {name!r} has dtype {array.dtype.name}, which safetensors cannot "
                            f"store (it stores {', '.join(_DTYPE_NAMES.values())})")
        tensors[name] = array
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"save: {path!r} is a directory; give the checkpoint a file name, such "
                                              f"as {os.path.join(path, 'checkpoint.safetensors')!r}", path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, f"save: no directory {directory!r} to write the checkpoint in", path)
    _remove_stale_staging(path)
    staging = f"{_staging_prefix(path)}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staged = os.path.join(staging, os.path.basename(path))
    try:
        os.mkdir(staging, 0o700)
        mode = _mode(path, staged)
        _safetensors_numpy.save_file(tensors, staged, metadata=_metadata(optimizers))
        with open(staged, "r+b") as written:
            os.chmod(staged, mode)
            os.fsync(written.fileno())  # the bytes are on disk before the name points at them
        os.replace(staged, path)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if not isinstance(error, (OSError, SafetensorError)):
            raise
        raise _write_error(error, path, directory) from error
    os.rmdir(staging)  # empty now
    try:
        _sync_directory(directory)
    except OSError as error:
        code, reason = _errno_and_reason(error)
        raise OSError(code, f"save: wrote the checkpoint {path!r} but could not sync its directory {directory!r} "
                            f"({reason}), so a crash may still lose it", path) from error


def _metadata(optimizers):
    """The file's metadata: the format, the version, and {path: {"type": class name, "slots":
    slot names}} of the optimizers whose state the file holds, as a JSON string."""
    recorded = {path: {"type": type(opt).__name__, "slots": list(opt.slot_names)} for path, opt in optimizers.items()}
    return {"format": "gpugrad", "gpugrad_version": __version__, "optimizers": json.dumps(recorded, sort_keys=True)}


def _staging_prefix(path):
    """The staging directory of a save of `path` on this machine, less "<pid>-<random>"."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}.gpugrad-tmp-{_HOST}-")


def _remove_stale_staging(path):
    """Remove the staging directories that saves of `path` on this machine left behind when
    their process died. Best effort: one that cannot be listed or removed stays."""
    directory, prefix = os.path.split(_staging_prefix(path))
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        tail = _STAGING_TAIL.fullmatch(entry.name[len(prefix):]) if entry.name.startswith(prefix) else None
        if tail and entry.is_dir(follow_symlinks=False) and not _alive(int(tail[1])):
            shutil.rmtree(entry.path, ignore_errors=True)


def _alive(pid):
    if os.name != "posix":
        return True  # os.kill(pid, 0) would end the process on Windows: keep every staging directory there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    return True


def _mode(path, staged):
    """The permission bits the checkpoint gets: those of the file it replaces (as writing over
    that file would keep them), else those open() gives a new file (0o666 less the umask, or
    what the directory's default ACL says), found by creating `staged` with open()'s mode."""
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            return os.fstat(descriptor).st_mode & 0o777
        finally:
            os.close(descriptor)


def _write_error(error, path, directory):
    """The OSError a save of `path` that failed with `error` raises: what went wrong, that the
    file at `path` is unchanged, and what to do about an unwritable directory or a full disk."""
    code, reason = _errno_and_reason(error)
    message = f"save: could not write the checkpoint {path!r} ({reason}); the file there, if any, is unchanged"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        message += (f"; the checkpoint is written beside it and renamed over it, so the directory {directory!r} "
                    f"must be writable: save elsewhere or make it writable")
    elif code in (errno.ENOSPC, errno.EDQUOT):
        message += "; the new checkpoint is written in full beside the old one before replacing it: free some space"
    return OSError(code, message, path)


def _errno_and_reason(error):
    """(errno, what went wrong) of an OSError, or of a safetensors error that names an
    "os error N" (EIO and the error's text when it names none)."""
    if isinstance(error, OSError) and error.errno is not None:
        return error.errno, error.strerror
    match = _OS_ERROR.search(str(error))
    if match:
        return int(match[1]), os.strerror(int(match[1]))
    return errno.EIO, str(error)


def _sync_directory(directory):
    """fsync `directory`, so that the rename in it survives a crash, where the system and the
    filesystem can (Windows cannot open a directory)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno != errno.EINVAL:  # EINVAL: a filesystem that cannot sync a directory
            raise
    finally:
        os.close(descriptor)


def _read(path, what, load_values):
    """({name: (shape, dtype name)}, {name: host array}, metadata or None) from the file at
    `path`; values are loaded (copied) only when `load_values`, and only for dtypes NumPy holds."""
    path = os.fspath(path)
    listing, values = {}, {}
    try:
        with open(path, "rb"):  # Python's errors (IsADirectoryError...) before safetensors' (ENODEV...)
            pass
        with safe_open(path, framework="np") as handle:
            metadata = handle.metadata()
            for name in handle.keys():
                piece = handle.get_slice(name)
                code = piece.get_dtype()
                listing[name] = (tuple(piece.get_shape()), _DTYPE_NAMES.get(code, code))
                if load_values and code in _DTYPE_NAMES:
                    values[name] = numpy.array(handle.get_tensor(name))
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(errno.ENOENT, f"{what}: no checkpoint file at {path!r}", path) from None
    except IsADirectoryError:
        raise IsADirectoryError(errno.EISDIR, f"{what}: {path!r} is a directory, not a checkpoint file; give the path "
                                              f"of a file gg.save wrote", path) from None
    except OSError as error:
        code, reason = _errno_and_reason(error)
        raise OSError(code, f"{what}: could not read the checkpoint {path!r} ({reason})", path) from error
    except SafetensorError as error:
        raise ValueError(f"{what}: {path!r} is not a readable safetensors checkpoint ({error})") from None
    return listing, values, metadata


def list_checkpoint(path):
    """{name: (shape tuple, dtype name such as "float32")} of the checkpoint at `path`,
    read from the header alone (no values are loaded).

    A missing file raises FileNotFoundError, a directory IsADirectoryError, another failure
    to read an OSError naming `path`; a truncated or corrupted file raises ValueError.
    Dtypes NumPy has no name for (bfloat16, float8...) keep their safetensors code ("BF16").
    Departure from TensorFlow: tf.train.list_variables returns [(name, shape)] pairs
    without dtypes.
    """
    return _read(path, "list_checkpoint", load_values=False)[0]


def _file_sections(listing, values, metadata, path):
    """({optimizer path: (class name or None, slot names)} of the optimizer state in the file,
    listing, values), the last two with the optimizer state of an older file renamed to the
    current layout (see `_old_layout`)."""
    recorded = (metadata or {}).get("optimizers")
    if recorded is None:
        return _old_layout(listing, values)
    try:
        sections = {str(p): (str(entry["type"]), tuple(map(str, entry["slots"])))
                    for p, entry in json.loads(recorded).items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ValueError(f"restore: {path!r} has unreadable optimizer metadata ({recorded!r})") from None
    return sections, listing, values


def _known_slot_names():
    """The slot names of every optimizer class defined so far."""
    names, classes = set(), [Optimizer]
    while classes:
        cls = classes.pop()
        names.update(cls.slot_names)
        classes.extend(cls.__subclasses__())
    return names


def _old_layout(listing, values):
    """Read a file written before optimizer state had a prefix of its own (or by another
    writer, without gpugrad's "optimizers" metadata): an optimizer at path P saved
    `P/iterations` and the slot of the variable named N as `N/<slot>`. The optimizers are
    found by their `.../iterations` entries (0-d int64), and each `N/<slot>` whose N is in
    the file and whose slot is a slot name of some optimizer class is renamed
    `P/<slot>/N`, for the optimizer whose `P/variables/` N is under, else for the only
    optimizer (with two or more, such a slot keeps its name and is not optimizer state).
    The class of the optimizers is unknown, so it is not checked."""
    paths = [name.rpartition("/")[0] for name, found in listing.items()
             if name.rpartition("/")[2] == "iterations" and found == ((), "int64")]
    if not paths:
        return {}, listing, values
    known = _known_slot_names()
    renamed = {}
    for name in listing:
        parent, slash, slot = name.rpartition("/")
        if not slash or slot not in known or parent not in listing:
            continue
        owners = [p for p in paths if parent.startswith(_join(p, "variables/"))] or paths
        if len(owners) == 1 and _join(owners[0], f"{slot}/{parent}") not in listing:
            renamed[name] = _join(owners[0], f"{slot}/{parent}")
    sections = {p: (None, tuple(sorted(known))) for p in paths}
    return (sections, {renamed.get(n, n): found for n, found in listing.items()},
            {renamed.get(n, n): value for n, value in values.items()})


def _build_from_file(obj, listing, optimizers):
    """Build the state of each variable of `obj` that an optimizer of `optimizers` ({path:
    Optimizer}) has none for yet but the file holds slots of under its path. Returns
    [(optimizer, variable), ...] built, so that they can be undone."""
    built = []
    variables = list(_walk(obj, "", set()))
    for prefix, opt in optimizers.items():
        known = {id(v) for v in opt.variables}
        for path, var in variables:
            if id(var) not in known and any(_join(prefix, f"{slot}/{path}") in listing for slot in opt.slot_names):
                opt.build([var])
                built.append((opt, var))
    return built


class RestoreResult(NamedTuple):
    """What `gg.restore` left out, as PyTorch's load_state_dict reports it: `missing`, the
    names the object has and the file lacks (left as they were), in saving order, and
    `unexpected`, the names the file has and the object lacks (not loaded), in the file's
    (sorted) order. Both are empty after a strict restore."""

    missing: list
    unexpected: list


def restore(path, obj, *, strict=True, weights_only=False):
    """Load the checkpoint at `path` into `obj`'s Variables (and optimizer state), in place.

    `obj` and the names are as for `gg.save`. The whole file is read and checked before
    anything is assigned (in place, on each Variable's own device); a restore that raises
    changes nothing. Returns a `RestoreResult(missing, unexpected)`.

    strict=True (the default): the names of `obj` and the file must be the same. Every
    difference (a name the file lacks, a name `obj` lacks, a shape or dtype that differs)
    is listed in one ValueError.

    strict=False: the names in both are loaded; those only `obj` has are left as they are
    and listed in `missing`, those only the file has are skipped and listed in
    `unexpected`. A name in both whose shape or dtype differs still raises ValueError
    (naming it and both shapes and dtypes), and nothing is changed.

    weights_only=True: only the Variables `obj` reaches through Modules and containers are
    restored; the file's optimizer state is passed over (not listed as unexpected) and the
    optimizers in `obj` are left as they are. With strict=True the weights must still match
    exactly. This loads a model+optimizer checkpoint into a model for inference or
    fine-tuning.

    Optimizer state is matched by its path: the optimizer at path P in `obj` gets the
    file's `P/iterations` and `P/<slot>/...` when the file's optimizer at P is of the same
    class. An optimizer in `obj` without state for a variable whose slots the file holds
    builds it first, so a fresh optimizer can be restored next to its model; otherwise
    build it yourself with `optimizer.build(var_list)` (a failed restore undoes what it
    built). The state of an optimizer of another class (Adam's slots where `obj` has an
    SGD) is never loaded: strict=True raises, naming both classes; strict=False lists the
    file's names as unexpected and the optimizer's as missing, and leaves it as it was.

    Files written before optimizer state had its own prefix (slots at
    `<variable path>/<slot>`) are read too: their slots are renamed to the current layout
    when the file holds one optimizer, and their optimizer's class, not recorded, is not
    checked.

    Errors are those of `gg.list_checkpoint`. Removes the staging directories that saves
    of `path` killed mid-write left (see `gg.save`).

    Departures from TensorFlow: tf.train.Checkpoint.restore matches lazily (values wait for
    variables created later) and reports unmatched names only on request
    (`assert_consumed`); gpugrad matches everything at once, strictly unless told
    otherwise, and reads only safetensors files, not TensorFlow checkpoints.
    """
    _check_savable(obj, "restore")
    path = os.fspath(path)
    _remove_stale_staging(path)
    listing, values, metadata = _read(path, "restore", load_values=True)
    sections, listing, values = _file_sections(listing, values, metadata, path)

    def saved_state(name):
        return any(_in_section(name, p, slots) for p, (_, slots) in sections.items())

    if weights_only:
        listing = {name: found for name, found in listing.items() if not saved_state(name)}
    targets = {} if weights_only else dict(_optimizers(obj))
    compatible, foreign, kind_lines = {}, set(), []  # foreign: the file's names of another optimizer class
    for prefix, opt in targets.items():
        if prefix not in sections:
            continue
        kind, slots = sections[prefix]
        if kind is None or kind == type(opt).__name__:
            compatible[prefix] = opt
            continue
        names = [name for name in listing if _in_section(name, prefix, slots)]
        foreign.update(names)
        shown = ", ".join(map(repr, names[:4])) + (", ..." if len(names) > 4 else "")
        kind_lines.append(f"  {prefix!r}: the object's optimizer there is {_a(type(opt).__name__)}, the file holds "
                          f"the state of {_a(kind)} ({len(names)} name{'s' if len(names) != 1 else ''}, not "
                          f"loaded: {shown})")
    built = _build_from_file(obj, listing, compatible)
    try:
        entries, _ = _flatten(obj, "restore", weights_only)
        weights = {name for name, _ in _walk(obj, "", set())}
        foreign_targets = [p for p in targets if p in sections and p not in compatible]
        foreign_owned = {name for name in entries if name not in weights and any(
            _in_section(name, p, targets[p].slot_names) for p in foreign_targets)}  # state of another class's optimizer
        missing = [name for name in entries if name not in listing or name in foreign]
        unexpected = [name for name in listing if name not in entries or name in foreign]
        lines = list(kind_lines) if strict else []
        for name, target in entries.items():
            expected = _expected(target)
            if name in foreign_owned:
                continue  # its optimizer's line above says why
            if name not in listing or name in foreign:
                if strict:
                    lines.append(f"  {name!r}: expected {_describe(*expected)}, found nothing (not in the file)")
            elif listing[name] != expected:
                lines.append(f"  {name!r}: expected {_describe(*expected)}, found {_describe(*listing[name])}")
        if strict:
            lines += [f"  {name!r}: expected nothing (the object has no such name), found {_describe(*listing[name])}"
                      for name in unexpected if name not in foreign]
        part = _part_hint(entries, listing)
        if lines:
            raise ValueError(f"restore: {path!r} does not match the object ({len(lines)} "
                             f"mismatch{'es' if len(lines) > 1 else ''}; nothing was restored):\n" + "\n".join(lines)
                             + (part or _hints(missing, unexpected, weights | foreign_owned, foreign, sections,
                                               targets, compatible, saved_state) if strict else part))
        if part:
            warnings.warn(f"restore: no name of the object is in {path!r}, so nothing was restored{part}",
                          UserWarning, stacklevel=2)
    except BaseException:
        for opt, var in built:
            opt.unbuild([var])  # a failed restore leaves the optimizer as it was
        raise
    for name, target in entries.items():
        if name in foreign or name not in listing:
            continue
        if isinstance(target, Optimizer):
            target.iterations = int(values[name])
        else:
            target.assign(values[name])
    return RestoreResult(missing, unexpected)


def _part_hint(entries, listing):
    """When no name of the object is in the file but each is under one key of it (the object
    is the model of a {"model": ..., "optimizer": ...} file, say): how to restore it."""
    if not entries or not listing or any(name in listing for name in entries):
        return ""
    for key in sorted({name.split("/")[0] for name in listing if "/" in name}):
        if all(_join(key, name) in listing for name in entries):
            return (f"\nThe object's names are all in the file under {key + '/'!r}: pass the object under that key, "
                    f"as in gg.restore(path, {{{key!r}: obj}}) (with weights_only=True to skip optimizer state).")
    return ""


def _a(word):
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def _hints(missing, unexpected, passed, foreign, sections, targets, compatible, saved_state):
    """What to do about the optimizer state among a strict restore's differences (`passed`:
    the missing names no hint is about)."""
    hints = []
    extra_state = [name for name in unexpected if name not in foreign and saved_state(name)]
    missing_state = [name for name in missing if name not in passed and name not in foreign]
    if extra_state and not targets:
        hints.append("The file holds optimizer state and the object no optimizer: pass weights_only=True to restore "
                     "the weights alone, or strict=False to load what matches.")
    absent = [p for p in targets if p not in sections]
    if absent and missing_state:
        held = f" (it holds some at {', '.join(map(repr, sections))})" if sections else ""
        hints.append(f"The file holds no optimizer state at {', '.join(map(repr, absent))}{held}: pass "
                     f"weights_only=True to restore the weights alone, or strict=False to load what matches.")
    if compatible and (extra_state or missing_state):
        hints.append(_BUILD_HINT.strip())
    if foreign:
        hints.append("An optimizer's state loads only into an optimizer of the same class: pass strict=False to "
                     "skip it (the optimizer then starts afresh), or restore with the optimizer it was saved with.")
    return "".join("\n" + hint for hint in hints)
