"""`palbench train` run inside a user's git repository that is no DVC project (issue 21, item 11): it writes its run
folder, curves included, and nothing else: no `dvc init`, nothing staged in the user's index."""

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import write_tiny_dataset
from palbench.config.plots import CURVES

BIN = Path(sys.executable).parent
TINY = ["--arch", "vgg16", "--width", "0.125", "--size", "32", "--layer", "conv10", "--no-progress"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=palbench", "-c", "user.email=tests@palbench", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout


def test_training_in_a_git_repository_leaves_it_untouched(tmp_path):
    write_tiny_dataset(tmp_path / "data", n=30, size=(32, 32))
    repo = tmp_path / "user"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "README.md").write_text("a user's project\n")
    git(repo, "add", "README.md")
    git(repo, "commit", "-q", "-m", "first")
    index = git(repo, "ls-files", "--stage")
    assert git(repo, "status", "--porcelain") == ""

    res = subprocess.run([str(BIN / "palbench"), "train", "run", "--data", str(tmp_path / "data"), *TINY,
                          "--epochs", "2", "--batch-size", "8"], cwd=repo, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert res.returncode == 0, res.stderr

    for root in (repo, tmp_path):
        assert not (root / ".dvc").exists() and not (root / ".dvcignore").exists(), root
    assert git(repo, "ls-files", "--stage") == index
    assert git(repo, "status", "--porcelain", "--untracked-files=normal").splitlines() == ["?? run/"]
    assert sorted(p.name for p in repo.iterdir()) == [".git", "README.md", "run"]
    live = repo / "run" / "dvclive"
    assert json.loads((live / "metrics.json").read_text())["step"] == 1
    assert sorted(p.name for p in (live / "plots" / "metrics").iterdir()) == sorted(f"{c}.tsv" for c in CURVES)
    for name in CURVES:
        rows = (live / "plots" / "metrics" / f"{name}.tsv").read_text().splitlines()
        assert rows[0] == f"step\t{name}" and [r.split("\t")[0] for r in rows[1:]] == ["0", "1"], name
