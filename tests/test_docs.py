"""The documentation holds together: the README links every page under docs/, and every link between the
pages (file and section) leads somewhere that exists in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", ROOT / "NOTES.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """The section anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    headings = re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def local_links(page: Path) -> list[tuple[Path, str]]:
    """(target file, anchor or "") of every link of a page that is not a web address."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    found = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        found.append(((page.parent / path).resolve() if path else page, anchor))
    return found


def test_the_readme_links_every_page_under_docs():
    linked = {target for target, _ in local_links(ROOT / "README.md")}
    pages = set((ROOT / "docs").glob("*.md"))
    assert pages and pages <= linked, sorted(p.name for p in pages - linked)


def test_every_link_between_the_pages_leads_to_a_file_and_section_that_exist():
    broken = []
    for page in PAGES:
        for target, anchor in local_links(page):
            if not target.exists() or ROOT not in target.parents:
                broken.append(f"{page.name}: {target}")
            elif anchor and target.suffix == ".md" and anchor not in anchors(target):
                broken.append(f"{page.name}: {target.name}#{anchor}")
    assert not broken, broken
