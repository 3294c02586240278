"""gg.save, gg.restore and gg.list_checkpoint as file operations: the staging directories of
saves killed mid-write are removed (only dead processes' ones), modes follow the umask or the
replaced file, the directory is synced after the rename, and every error names the checkpoint."""
import errno
import os
import re
import shutil
import signal
import stat
import subprocess
import sys

import numpy as np
import pytest
import safetensors
import safetensors.numpy

import gpugrad as gg

# Saves w = zeros(1000) at argv[1], but its serializer writes half a file and waits to be killed.
STUCK_WRITER = """
import sys, time
import numpy as np
import safetensors.numpy
import gpugrad as gg

def stuck(tensors, filename, metadata=None):
    with open(filename, "wb") as half:
        half.write(bytes(4096))
    print("writing", flush=True)
    time.sleep(600)

safetensors.numpy.save_file = stuck
gg.save(sys.argv[1], {"w": gg.Variable(np.zeros(1000))})
"""


def start_stuck_writer(path):
    """A process stuck in the middle of gg.save(path, ...)."""
    environment = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(gg.__file__)))
    writer = subprocess.Popen([sys.executable, "-c", STUCK_WRITER, str(path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=environment)
    line = writer.stdout.readline()
    if line != "writing\n":
        writer.kill()
        output, errors = writer.communicate()
        pytest.fail(f"the writer did not start writing: {line}{output}{errors}")
    return writer


def kill(writer):
    writer.send_signal(signal.SIGKILL)
    writer.wait()  # reaped: no zombie keeps its pid alive
    writer.stdout.close()
    writer.stderr.close()


def hidden(directory):
    return sorted(name for name in os.listdir(directory) if name.startswith("."))


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# ---------------------------------------------------------------------------------------
# saves killed mid-write

@pytest.mark.parametrize("next_call", ["save", "restore"])
def test_a_killed_save_leaves_its_staging_directory_until_the_next_save_or_restore(tmp_path, next_call):
    path = tmp_path / "a.safetensors"
    gg.save(path, {"w": gg.Variable(np.ones(1000))})
    writer = start_stuck_writer(path)
    try:
        (staging,) = hidden(tmp_path)
        assert re.fullmatch(rf"\.a\.safetensors\.gpugrad-tmp-[0-9a-f]{{8}}-{writer.pid}-[0-9a-f]{{8}}", staging)
        gg.save(path, {"w": gg.Variable(np.full(1000, 2.0))})  # a save beside a live one leaves it alone
        assert hidden(tmp_path) == [staging]
    finally:
        kill(writer)
    assert hidden(tmp_path) == [staging] and os.listdir(tmp_path / staging)  # what a killed save leaves
    target = {"w": gg.Variable(np.zeros(1000))}
    if next_call == "save":
        gg.save(path, target)
    else:
        gg.restore(path, target)
        np.testing.assert_array_equal(target["w"].numpy(), np.full(1000, 2.0))
    assert os.listdir(tmp_path) == ["a.safetensors"]


def test_only_the_staging_directories_of_that_path_on_this_machine_are_removed(tmp_path):
    kill(start_stuck_writer(tmp_path / "a.safetensors"))
    (stale,) = hidden(tmp_path)
    host, rest = re.fullmatch(r"\.a\.safetensors\.gpugrad-tmp-([0-9a-f]{8})-(.*)", stale).groups()
    other_path = f".b.safetensors.gpugrad-tmp-{host}-{rest}"
    other_host = f".a.safetensors.gpugrad-tmp-{int(host, 16) ^ 1:08x}-{rest}"  # a pid of another machine
    not_ours = f".a.safetensors.{rest}.tmp"
    for name in (other_path, other_host, not_ours):
        shutil.copytree(tmp_path / stale, tmp_path / name)
    gg.save(tmp_path / "a.safetensors", gg.Variable(1.0))
    assert hidden(tmp_path) == sorted([other_path, other_host, not_ours])
    gg.save(tmp_path / "b.safetensors", gg.Variable(1.0))
    assert hidden(tmp_path) == sorted([other_host, not_ours])


# ---------------------------------------------------------------------------------------
# modes and syncing

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002], ids=oct)
def test_a_new_checkpoint_gets_the_mode_open_gives_a_new_file(tmp_path, umask):
    previous = os.umask(umask)
    try:
        gg.save(tmp_path / "a.safetensors", gg.Variable(1.0))
        (tmp_path / "plain").write_bytes(b"")
    finally:
        os.umask(previous)
    assert mode(tmp_path / "a.safetensors") == mode(tmp_path / "plain") == 0o666 & ~umask


@pytest.mark.parametrize("old_mode", [0o644, 0o640, 0o444], ids=oct)
def test_a_replaced_checkpoint_keeps_its_mode(tmp_path, old_mode):
    path = tmp_path / "a.safetensors"
    gg.save(path, gg.Variable(1.0))
    os.chmod(path, old_mode)
    previous = os.umask(0o077)
    try:
        gg.save(path, gg.Variable(2.0))
    finally:
        os.umask(previous)
    assert mode(path) == old_mode
    assert float(safetensors.numpy.load_file(path)[""]) == 2.0


def _recording_fsync(monkeypatch, events, directory_error=None):
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor):
        kind = "directory" if stat.S_ISDIR(os.fstat(descriptor).st_mode) else "file"
        events.append(f"fsync {kind}")
        if kind == "directory" and directory_error is not None:
            raise OSError(directory_error, os.strerror(directory_error))
        real_fsync(descriptor)

    def replace(source, destination):
        events.append("replace")
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)


def test_the_file_is_synced_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    events = []
    _recording_fsync(monkeypatch, events)
    gg.save(tmp_path / "a.safetensors", gg.Variable(1.0))
    assert events == ["fsync file", "replace", "fsync directory"]


def test_a_filesystem_that_cannot_sync_a_directory_still_saves(tmp_path, monkeypatch):
    _recording_fsync(monkeypatch, [], directory_error=errno.EINVAL)
    gg.save(tmp_path / "a.safetensors", gg.Variable(1.0))
    monkeypatch.undo()
    assert gg.list_checkpoint(tmp_path / "a.safetensors") == {"": ((), "float32")}


def test_a_failed_directory_sync_names_the_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "a.safetensors"
    _recording_fsync(monkeypatch, [], directory_error=errno.EIO)
    with pytest.raises(OSError) as error:
        gg.save(path, gg.Variable(1.0))
    monkeypatch.undo()
    assert error.value.errno == errno.EIO and error.value.filename == str(path)
    assert str(error.value).startswith(f"[Errno 5] save: wrote the checkpoint {str(path)!r} but could not sync its "
                                       f"directory {str(tmp_path)!r} (Input/output error), so a crash may still "
                                       f"lose it")
    assert os.listdir(tmp_path) == ["a.safetensors"]


# ---------------------------------------------------------------------------------------
# errors name the checkpoint

def test_a_directory_is_not_a_checkpoint(tmp_path):
    (tmp_path / "inside").write_bytes(b"kept")
    with pytest.raises(IsADirectoryError) as error:
        gg.save(tmp_path, gg.Variable(1.0))
    assert str(error.value) == (f"[Errno 21] save: {str(tmp_path)!r} is a directory; give the checkpoint a file "
                                f"name, such as {str(tmp_path / 'checkpoint.safetensors')!r}: {str(tmp_path)!r}")
    assert os.listdir(tmp_path) == ["inside"]
    for what, call in (("restore", lambda: gg.restore(tmp_path, gg.Variable(1.0))),
                       ("list_checkpoint", lambda: gg.list_checkpoint(tmp_path))):
        with pytest.raises(IsADirectoryError) as error:
            call()
        assert str(error.value) == (f"[Errno 21] {what}: {str(tmp_path)!r} is a directory, not a checkpoint file; "
                                    f"give the path of a file gg.save wrote: {str(tmp_path)!r}")


def test_a_path_under_a_regular_file_is_named(tmp_path):
    path = tmp_path / "file" / "a.safetensors"
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=re.escape(f"save: no directory {str(tmp_path / 'file')!r}")):
        gg.save(path, gg.Variable(1.0))
    with pytest.raises(FileNotFoundError, match=re.escape(f"restore: no checkpoint file at {str(path)!r}")):
        gg.restore(path, gg.Variable(1.0))


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="needs /dev/null")
def test_a_file_that_cannot_be_read_as_a_checkpoint_is_named():
    with pytest.raises(OSError) as error:  # safetensors cannot map a character device
        gg.list_checkpoint("/dev/null")
    assert error.value.errno == errno.ENODEV
    assert str(error.value) == ("[Errno 19] list_checkpoint: could not read the checkpoint '/dev/null' "
                                "(No such device): '/dev/null'")


UNWRITABLE = "the directory {directory!r} must be writable: save elsewhere or make it writable"


FAILURES = {  # failure: (errno, exception class, hint)
    "read-only directory": (errno.EROFS, OSError, UNWRITABLE),
    "read-only while serializing": (errno.EROFS, OSError, UNWRITABLE),
    "permission denied at the rename": (errno.EACCES, PermissionError, UNWRITABLE),
    "disk full while serializing": (errno.ENOSPC, OSError, "free some space"),
    "serializer error without errno": (errno.EIO, OSError, None),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_failed_write_names_the_checkpoint_and_keeps_the_old_one(tmp_path, monkeypatch, failure):
    code, kind, hint = FAILURES[failure]
    path = tmp_path / "a.safetensors"
    gg.save(path, {"w": gg.Variable([1.0, 2.0])})
    old = path.read_bytes()

    def fail_os(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(args[0]))

    def fail_serializer(tensors, filename, metadata=None):  # as safetensors reports an I/O error
        with open(filename, "wb") as half:
            half.write(b"\0" * 8)
        if failure == "serializer error without errno":
            raise safetensors.SafetensorError("Error while serializing: something broke")
        raise safetensors.SafetensorError(f"Error while serializing: I/O error: {os.strerror(code)} (os error {code}) "
                                          f"at path '{os.path.dirname(filename)}/.tmpubfK8Y'")

    if failure == "read-only directory":
        monkeypatch.setattr(os, "mkdir", fail_os)
    elif failure == "permission denied at the rename":
        monkeypatch.setattr(os, "replace", fail_os)
    else:
        monkeypatch.setattr(safetensors.numpy, "save_file", fail_serializer)
    with pytest.raises(kind) as error:
        gg.save(path, {"w": gg.Variable([3.0, 4.0])})
    monkeypatch.undo()
    reason = "Error while serializing: something broke" if code == errno.EIO else os.strerror(code)
    message = str(error.value)
    assert error.value.errno == code and error.value.filename == str(path)
    assert message.startswith(f"[Errno {code}] save: could not write the checkpoint {str(path)!r} ({reason}); the file "
                              f"there, if any, is unchanged")
    assert "tmp" not in message.replace(str(tmp_path), "")  # no temporary file named
    if hint is None:
        assert message.count(";") == 1
    else:
        assert hint.format(directory=str(tmp_path)) in message
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["a.safetensors"]
