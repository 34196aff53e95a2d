"""floodx.locks: a lock left by a killed Snakemake is released only when no Snakemake runs."""

import subprocess
import sys
import time

from floodx import locks


def make_lock(folder):
    lock_dir = folder / ".snakemake" / "locks"
    lock_dir.mkdir(parents=True)
    (lock_dir / "0.input.lock").write_text("results/x\n")
    return lock_dir


def test_a_stale_lock_is_released(tmp_path):
    lock_dir = make_lock(tmp_path)
    assert locks.release_stale_lock(tmp_path, running=lambda d: []) == [lock_dir / "0.input.lock"]
    assert not list(lock_dir.iterdir())


def test_a_live_runs_lock_is_kept(tmp_path):
    lock_dir = make_lock(tmp_path)
    assert locks.release_stale_lock(tmp_path, running=lambda d: [12345]) == []
    assert (lock_dir / "0.input.lock").exists()


def test_a_snakemake_process_working_here_is_found(tmp_path):
    fake = tmp_path / "bin" / "snakemake"
    fake.parent.mkdir()
    fake.write_text("import time\ntime.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, str(fake)], cwd=tmp_path)
    try:
        # Until the child has exec'd, /proc shows the parent's command line: wait for it (a loaded machine).
        deadline = time.monotonic() + 10
        while proc.pid not in locks.snakemake_processes(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.pid in locks.snakemake_processes(tmp_path)
        assert proc.pid not in locks.snakemake_processes(tmp_path / "bin")
    finally:
        proc.kill()
        proc.wait()
