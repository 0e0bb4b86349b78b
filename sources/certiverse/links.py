"""What a ``nextLink`` tells the client: which page comes next, and nothing more.

The reference pages by ``page=N`` on the same query, and ``nextLink`` says that there is a
next page and which. A link is read for that page number alone: the client sends the
request to the configured origin, with the query's own endpoint and filters, whatever form
the link takes (relative, a query alone, another host, scheme or port a proxy forgot to
rewrite, characters left unencoded, ``Page`` as ASP.NET binds it). So the token never
leaves the configured origin, and a link cannot lead the read astray. What the link says
besides (another origin or path, other filters) is only reported.
"""

from __future__ import annotations

import re
from typing import Any, Iterable
from urllib.parse import parse_qsl, urlsplit

# A page number in a link, however it is spelt and whatever surrounds it (unencoded text may hold "#" or
# spaces, which URL parsers take for a fragment or an error).
_PAGE_PARAM = re.compile(r"(?:^|[?&;#])\s*page\s*=\s*(\d+)\s*(?=$|[&;#])", re.IGNORECASE)
_PAGE_NAME = re.compile(r"(?:^|[?&;#])\s*page\s*=", re.IGNORECASE)


def origin(parts: Any) -> tuple[str, str, int | None]:
    """(scheme, host, port) of split URL parts, the port filled in from the scheme."""
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), parts.port or default)


def linked_pages(link: str) -> set[int] | None:
    """The page numbers a link names (normally one); an empty set for a page that is no number, None when the
    link names no page at all."""
    numbers = {int(n) for n in _PAGE_PARAM.findall(link)}
    if not numbers and not _PAGE_NAME.search(link):
        return None
    return numbers


def elsewhere(link: str, base_url: str, path: str) -> str:
    """Where a link points other than ``base_url`` + ``path`` (another origin, another path), or ""."""
    parts = urlsplit(link)
    where = ""
    if parts.netloc:
        base = urlsplit(base_url)
        try:
            same = origin(parts._replace(scheme=parts.scheme or base.scheme)) == origin(base)
        except ValueError:  # a port that is no number: somewhere else all the same
            same = False
        if not same:
            where = f"{parts.scheme + ':' if parts.scheme else ''}//{parts.netloc}"
    if parts.path and parts.path.rstrip("/") != path:
        where += parts.path
    return where


def changed_filters(filters: Iterable[tuple[str, str]], link: str) -> list[str]:
    """The query's filters a link drops or changes (names compared as ASP.NET binds them, whatever their case;
    a value left unencoded counts as kept)."""
    raw = link.split("?", 1)[1] if "?" in link else ""
    given = {k.lower(): v for k, v in parse_qsl(raw, keep_blank_values=True)}
    return [k for k, v in filters if given.get(k.lower()) != v and f"{k}={v}".lower() not in raw.lower()]
