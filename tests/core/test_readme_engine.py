"""The README's "Use the engine directly" examples run as written."""
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_engine_examples_run(capsys):
    text = README.read_text()
    start = text.index("## Use the engine directly")
    section = text[start:text.index("\n#", start + 1)]  # up to the next heading
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["loss"].data < 0.05
    assert namespace["result"].metrics["accuracy"] >= 0.97
    assert "99 " in capsys.readouterr().out  # the callback printed every step
