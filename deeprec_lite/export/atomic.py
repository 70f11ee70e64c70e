"""Atomic publication of an output directory.

Everything is written into a temporary directory beside the target
(`.<name>.tmp-<pid>-<random>`) and renamed into place when complete. Replacing an
existing output renames the old one away (`.<name>.old-<pid>-<random>`), renames
the new one in, then deletes the old one. Every file and directory of the new
output is flushed to stable storage (fsync) before it is renamed in, and the
parent directory after, so a crash or power loss leaves the old output or the
complete new one. Leftovers of a killed process are cleaned up by the next
export to the same target (and an old output whose replacement never arrived is
put back).
"""
import contextlib
import os
import shutil
import tempfile

from deeprec_lite._files import fsync_path, sync_tree


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(target, kind):
    """Paths of `kind` ("tmp" or "old") leftovers of `target` whose writer is dead."""
    parent, base = os.path.split(target)
    prefix = f".{base}.{kind}-"
    for entry in os.listdir(parent):
        if not entry.startswith(prefix):
            continue
        pid = entry[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            yield os.path.join(parent, entry)


def recover(target):
    """Cleans up after interrupted exports to `target`: restores an old output whose
    replacement was interrupted between its two renames, deletes dead temporaries."""
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        return
    for old in _leftovers(target, "old"):
        previous = os.path.join(old, "previous")
        if os.path.isdir(previous) and not os.path.exists(target):
            os.rename(previous, target)
        shutil.rmtree(old, ignore_errors=True)
    for tmp in _leftovers(target, "tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


def check_target(target, overwrite, what="out_dir"):
    """Refuses an existing, non-empty target unless overwrite."""
    if os.path.exists(target) and os.listdir(target) and not overwrite:
        raise ValueError(f"{what} {target!r} already exists; pass overwrite=True to replace it")


@contextlib.contextmanager
def atomic_directory(target, overwrite=False):
    """Yields a fresh temporary directory; on success it becomes `target` atomically.

    On any exception the temporary directory is deleted and `target` is untouched.
    """
    target = os.path.abspath(target)
    parent, base = os.path.split(target)
    os.makedirs(parent, exist_ok=True)
    recover(target)
    check_target(target, overwrite)
    tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-{os.getpid()}-", dir=parent)
    try:
        yield tmp
        _publish(tmp, target, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish(tmp, target, overwrite):
    parent, base = os.path.split(target)
    sync_tree(tmp)
    if not os.path.exists(target):
        os.rename(tmp, target)
        fsync_path(parent, directory=True)
        return
    check_target(target, overwrite)
    old = tempfile.mkdtemp(prefix=f".{base}.old-{os.getpid()}-", dir=parent)
    os.rename(target, os.path.join(old, "previous"))  # rename the old one away ...
    try:
        os.rename(tmp, target)  # ... the new one in ...
    except BaseException:
        os.rename(os.path.join(old, "previous"), target)
        os.rmdir(old)
        raise
    fsync_path(parent, directory=True)
    shutil.rmtree(old, ignore_errors=True)  # ... and delete the old one
