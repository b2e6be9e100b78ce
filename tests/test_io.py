"""palbench.io: atomic writes leave the umask's modes (not tempfile's 0600/0700) and nothing on failure."""

from __future__ import annotations

import os
import stat

import pytest

from palbench.io import atomic_dir, atomic_path, write_text


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [
    (0o022, 0o644, 0o755),
    (0o002, 0o664, 0o775),
    (0o077, 0o600, 0o700),
])  # fmt: skip
def test_modes_follow_umask(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        write_text(tmp_path / "a.txt", "a\n")
        write_text(tmp_path / "a.txt", "b\n")  # a replaced file too
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.unlink()  # a writer that re-creates the file
            tmp.write_bytes(b"b")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "x").write_text("x")
        with atomic_dir(tmp_path / "d") as tmp:  # replacing an existing folder
            (tmp / "y").write_text("y")
        with open(tmp_path / "plain.txt", "w"):
            pass
    finally:
        os.umask(old)
    assert _mode(tmp_path / "plain.txt") == file_mode
    assert _mode(tmp_path / "a.txt") == file_mode
    assert _mode(tmp_path / "b.bin") == file_mode
    assert _mode(tmp_path / "d") == dir_mode
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["y"]


def test_atomic_path_failure_leaves_old_content(tmp_path):
    target = tmp_path / "m.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_atomic_dir_failure_leaves_old_folder(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "new").write_text("half")
        raise RuntimeError("boom")
    assert sorted(p.name for p in target.iterdir()) == ["keep"]
    assert (target / "keep").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX umask")
def test_umask_read_with_and_without_proc(monkeypatch):
    import palbench.io as pio

    def no_proc(*args, **kwargs):
        raise FileNotFoundError("/proc/self/status")

    old = os.umask(0o027)
    try:
        assert pio._umask() == 0o027
        monkeypatch.setattr(pio, "open", no_proc, raising=False)
        assert pio._umask() == 0o027  # the os.umask pair, which restores it
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(old)
