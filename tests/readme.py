"""The README's and docs/' examples, read from the Markdown so the tests run them exactly as
written. In a ``sh`` block, the ``# -> ...`` lines after a command are what it prints (``...``
stands for what varies), and :func:`expected` holds the output to them."""

from __future__ import annotations

import re

from .conftest import ROOT

DEFAULT_URL = "http://127.0.0.1:8000"
README = "README.md"


def section(title: str, page: str = README) -> str:
    """The text under the heading ``title`` (any level) up to the next heading of that level or
    higher; fenced code is not searched for headings."""
    lines = (ROOT / page).read_text().splitlines()
    start = level = None
    fence = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fence = not fence
            continue
        heading = None if fence else re.match(r"^(#+) (.*)$", line)
        if heading is None:
            continue
        if start is None and heading.group(2).strip() == title:
            start, level = i + 1, len(heading.group(1))
        elif start is not None and level is not None and len(heading.group(1)) <= level:
            return "\n".join(lines[start:i]) + "\n"
    if start is None:
        raise KeyError(f"no heading {title!r} in {page}")
    return "\n".join(lines[start:]) + "\n"


def code_block(title: str, lang: str, index: int = 0, page: str = README) -> str:
    """The ``index``-th fenced block of language ``lang`` in the section ``title``."""
    return section(title, page).split(f"```{lang}\n")[1 + index].split("```", 1)[0]


def examples(title: str, page: str = README) -> list[tuple[str, list[str]]]:
    """Each command of the section's first ``sh`` block with the ``# ->`` lines after it:
    comment lines dropped, continuation lines and multi-line quoted JSON joined."""
    found: list[tuple[str, list[str]]] = []
    current = ""
    for line in code_block(title, "sh", page=page).splitlines():
        if line.startswith("# -> ") and found and not current:
            found[-1][1].append(line[len("# -> ") :])
            continue
        if line.startswith("#") and not current:
            continue
        current += line + "\n"
        if not line.endswith("\\") and current.count("'") % 2 == 0:
            if current.strip():
                found.append((current.rstrip(), []))
            current = ""
    return found


def shell_commands(title: str, page: str = README) -> list[str]:
    return [command for command, _ in examples(title, page)]


def expected(printed: str, lines: list[str]) -> None:
    """Assert the command printed what its ``# ->`` lines say: ``...`` matches anything, and a
    line ending in ``...`` may go on."""
    got = printed.rstrip("\n").splitlines()
    assert len(got) >= len(lines), (printed, lines)
    for line, want in zip(got, lines, strict=False):
        pattern = ".*".join(re.escape(part) for part in want.split("..."))
        assert re.fullmatch(pattern, line), f"printed {line!r}, the docs say {want!r}"


def against(code: str, url: str) -> str:
    """An example pointed at a test server instead of the docs' default address."""
    return code.replace(DEFAULT_URL, url)
