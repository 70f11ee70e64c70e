"""Nothing half-written: refusal without overwrite, atomic replacement, a simulated
write error and a kill -9 mid-write leave the previous export intact."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import deeprec_lite as drl
from deeprec_lite.export import atomic, export_embeddings, parquet_export, read_embeddings


def make_kv(num_keys, seed):
    kv = drl.KVVariable(4, initializer="uniform", seed=seed, name="t")
    kv.lookup_or_insert(np.arange(num_keys, dtype=np.int64), global_step=1)
    return kv


def snapshot(directory):
    export = read_embeddings(directory)
    return export.manifest, export.numpy("t")[0].tolist()


def test_existing_export_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    export_embeddings(make_kv(50, 0), out)
    before = snapshot(out)
    with pytest.raises(ValueError, match="already exists; pass overwrite=True"):
        export_embeddings(make_kv(80, 1), out)
    assert snapshot(out) == before
    export_embeddings(make_kv(80, 1), out, overwrite=True)
    assert sorted(snapshot(out)[1]) == list(range(80))
    assert os.listdir(tmp_path) == ["out"]  # the old one was deleted, no temporaries


def test_a_write_error_leaves_the_previous_export_and_no_leftovers(tmp_path, monkeypatch):
    out = tmp_path / "out"
    export_embeddings(make_kv(50, 0), out)
    before = snapshot(out)
    calls = []
    real = parquet_export._write_file

    def failing(table, path, compression):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        real(table, path, compression)

    monkeypatch.setattr(parquet_export, "_write_file", failing)
    with pytest.raises(OSError, match="simulated"):
        export_embeddings(make_kv(500, 1), out, overwrite=True, max_file_bytes=256, threads=2)
    assert len(calls) >= 3
    assert snapshot(out) == before
    assert os.listdir(tmp_path) == ["out"]
    calls.clear()
    with pytest.raises(OSError, match="simulated"):  # and onto a fresh target: nothing at all
        export_embeddings(make_kv(500, 1), tmp_path / "fresh", max_file_bytes=256)
    assert os.listdir(tmp_path) == ["out"]


KILLED_WRITER = r'''
import sys, time
import numpy as np
import deeprec_lite as drl
from deeprec_lite.export import export_embeddings, parquet_export
out, flag = sys.argv[1:]
real = parquet_export._write_file
def slow(table, path, compression):
    real(table, path, compression)
    open(flag, "w").close()   # at least one file of the new export is on disk
    time.sleep(600)
parquet_export._write_file = slow
kv = drl.KVVariable(4, name="t")
kv.lookup_or_insert(np.arange(1000, dtype=np.int64), global_step=1)
export_embeddings(kv, out, overwrite=True, max_file_bytes=512)
'''


def test_kill_9_mid_write_leaves_the_previous_export(tmp_path):
    out, flag = tmp_path / "out", tmp_path / "flag"
    export_embeddings(make_kv(50, 0), out)
    before = snapshot(out)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(out), str(flag)],
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    try:
        deadline = time.time() + 120
        while not flag.exists():
            assert proc.poll() is None and time.time() < deadline, "writer did not start"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert snapshot(out) == before
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith(".out.tmp-")]
    assert leftovers  # the killed writer's temporary directory, hidden beside the target
    export_embeddings(make_kv(60, 2), out, overwrite=True)  # the next export cleans up
    assert sorted(os.listdir(tmp_path)) == ["flag", "out"]
    assert len(snapshot(out)[1]) == 60


def test_interrupted_replacement_is_rolled_back(tmp_path):
    """A writer killed between renaming the old export away and the new one in."""
    out = tmp_path / "out"
    export_embeddings(make_kv(50, 0), out)
    before = snapshot(out)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    away = tmp_path / f".out.old-{dead.pid}-x"
    away.mkdir()
    os.rename(out, away / "previous")
    atomic.recover(str(out))
    assert snapshot(out) == before
    assert os.listdir(tmp_path) == ["out"]


def test_the_new_export_is_on_disk_before_it_is_renamed_in(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    out = tmp_path / "out"
    for overwrite in (False, True):
        synced.clear()
        export_embeddings(make_kv(500, 0), out, max_file_bytes=256, overwrite=overwrite)
        # every file and directory, while still in the temporary directory; then the parent
        assert synced[-1] == str(tmp_path)
        tmp = os.path.commonpath(synced[:-1])
        assert os.path.basename(tmp).startswith(".out.tmp-")
        published = {os.path.relpath(os.path.join(d, name), out)
                     for d, dirs, files in os.walk(out) for name in dirs + files} | {"."}
        assert {os.path.relpath(p, tmp) for p in synced[:-1]} == published
        assert len(published) > 3
