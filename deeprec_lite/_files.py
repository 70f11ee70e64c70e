"""Files written whole or not at all: small ones through a temporary file, and the
flush of a directory tree before it is renamed into place. Standard library only (the
KV core uses it too)."""
import os


def sync_tree(root):
    """Flushes every file under root, and the directories naming them, to stable storage."""
    for directory, _, files in os.walk(root):
        for name in files:
            fsync_path(os.path.join(directory, name))
        fsync_path(directory, directory=True)


def fsync_path(path, directory=False):
    """fsync of a file, or of a directory (its entries) with directory=True."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomically(path, text):
    """Writes `text` to `path` through a temporary file in the same directory, flushed to
    disk and renamed into place: a reader sees the old file or the complete new one."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
