"""The README's claims point at tests that exist: every `tests/...py::name` it cites is a real test."""

from __future__ import annotations

import re

from support.paths import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
CITED = re.compile(r"`(tests/[\w/]+\.py)((?:::\w+)?)`|`::(\w+)`")


def test_every_test_the_readme_cites_exists():
    current = None
    cited = 0
    for path, name, bare in CITED.findall(README):
        if path:
            current = REPO_ROOT / path
            assert current.is_file(), f"README cites {path}, which does not exist"
        name = name.removeprefix("::") or bare
        if name:
            assert current is not None and re.search(rf"def {name}\(", current.read_text(encoding="utf-8")), (
                f"README cites {name} in {current}, which has no such test"
            )
        cited += 1
    assert cited > 20
