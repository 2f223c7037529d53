"""Prints the README's Nth command of its "## Two commands" section (0: train, 1: tests).

.ci/run runs these exactly as the README writes them, so they cannot drift apart.
"""

import re
import sys
from pathlib import Path


def readme_commands(readme: Path) -> list[str]:
    """The one-line bash blocks of the README's "## Two commands" section, in order."""
    section = readme.read_text().split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)\n```", section, re.S)]


if __name__ == "__main__":
    print(readme_commands(Path(__file__).resolve().parents[1] / "README.md")[int(sys.argv[1])])
