"""The docs stand alone and match the tree: the README's layout table names every
top-level package (and only those), and no file cites a document outside the
repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    return [ROOT / line for line in out.splitlines()]


def test_the_readme_layout_names_every_top_level_folder_of_code():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Layout"):readme.index("## Tests")]
    listed = set(re.findall(r"^\| `([a-z_]+)/` \|", table, re.M))
    folders = {path.relative_to(ROOT).parts[0] for path in tracked()
               if len(path.relative_to(ROOT).parts) > 1 and path.suffix == ".py"}
    assert listed == folders


def test_no_file_cites_a_document_outside_the_repository():
    citing = [str(path.relative_to(ROOT)) for path in tracked()
              if path.suffix in (".py", ".md", ".toml", ".yml", ".html", ".js")
              and path.name != "test_docs.py" and "DESIGN.md" in path.read_text()]
    assert citing == []
