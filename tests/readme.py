"""The README's examples, read from README.md so the tests run them exactly as written."""

from __future__ import annotations

from .conftest import ROOT

DEFAULT_URL = "http://127.0.0.1:8000"


def section(title: str) -> str:
    """The text under ``## title`` up to the next ``## `` heading."""
    text = (ROOT / "README.md").read_text()
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def code_block(title: str, lang: str, index: int = 0) -> str:
    """The ``index``-th fenced block of language ``lang`` in the section ``title``."""
    return section(title).split(f"```{lang}\n")[1 + index].split("```", 1)[0]


def shell_commands(title: str) -> list[str]:
    """The commands of the section's first ``sh`` block: comment lines dropped, continuation
    lines and multi-line quoted JSON joined into one command each."""
    commands, current = [], ""
    for line in code_block(title, "sh").splitlines():
        if line.startswith("#") and not current:
            continue
        current += line + "\n"
        if not line.endswith("\\") and current.count("'") % 2 == 0:
            if current.strip():
                commands.append(current.rstrip())
            current = ""
    return commands


def against(code: str, url: str) -> str:
    """An example pointed at a test server instead of the README's default address."""
    return code.replace(DEFAULT_URL, url)
