"""The README's example runs as written and really trains (the loss changes the weights through PAL)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    scope: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)
    assert scope["loss"].requires_grad and -1 <= scope["pal_loss"](scope["attribution"], scope["prior"]).item() <= 1
