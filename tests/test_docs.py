"""The documentation's links: every relative link in README.md and docs/*.md reaches a file, and a
heading when it names one, so moving text between files cannot leave a reader at a dead end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import ROOT

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# Markdown links and images, [text](target "title"), and HTML src/href attributes.
_MARKDOWN_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_LINK = re.compile(r"\b(?:src|href)=\"([^\"]+)\"")
_INLINE_CODE = re.compile(r"`[^`]*`")


def prose_lines(path: Path) -> list[str]:
    """Return the file's lines outside fenced code blocks (code may show "#" lines and brackets)."""
    lines, in_fence = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """Return GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Return the anchors of a Markdown file's headings, repeated ones numbered as GitHub does."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path):
        heading = _HEADING.match(line)
        if heading is None:
            continue
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> list[str]:
    """Return the links of a file that point inside the repository (no scheme, no bare e-mail)."""
    links = []
    for line in prose_lines(path):
        line = _INLINE_CODE.sub("", line)
        for target in _MARKDOWN_LINK.findall(line) + _HTML_LINK.findall(line):
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):
                links.append(target)
    return links


def broken_links(path: Path) -> list[str]:
    """Return the relative links of a file whose file or heading does not exist, as link: reason."""
    broken = []
    for link in relative_links(path):
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        if not file.exists():
            broken.append(f"{link}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{link}: no heading with anchor #{anchor} in {file}")
    return broken


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file_and_heading(path: Path) -> None:
    assert broken_links(path) == []


def test_the_link_check_finds_broken_links_and_anchors(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## Set `X`, then go!\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Page\n\n"
        "[ok](other.md#set-x-then-go) [ok](#page-1) [ok](https://example.com/x.md) `[code](gone.md)`\n"
        '[gone](gone.md) [bad anchor](other.md#nothing) <img src="missing.png">\n'
        "```\n[in code](gone-too.md)\n# not a heading\n```\n",
        encoding="utf-8",
    )
    assert anchors(page) == {"page", "page-1"}
    assert [problem.split(":")[0] for problem in broken_links(page)] == [
        "gone.md",
        "other.md#nothing",
        "missing.png",
    ]


def test_the_readme_reads_in_five_minutes() -> None:
    """Issue 23, item 9: the README is a front page; the details live in docs/ (about 200 words a
    minute for five minutes, code blocks and tables included)."""
    words = len((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert words <= 1200
