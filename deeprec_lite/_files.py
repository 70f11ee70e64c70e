"""Small files written whole or not at all."""
import os


def write_text_atomically(path, text):
    """Writes `text` to `path` through a temporary file in the same directory, flushed to
    disk and renamed into place: a reader sees the old file or the complete new one."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
