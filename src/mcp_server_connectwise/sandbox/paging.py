"""ConnectWise's two paging styles and its `Link` header.

Navigable: `page` (1-based) and `pageSize` (default 25, max 1000); `Link` carries first/prev/next/last, leaving
out the ones that do not apply, each URL repeating the request's own query with `page=` moved last.
Forward-only (`pagination-type: forward-only`): `pageId` acts as `id > pageId` in id order, `orderBy` is refused,
`Link` has rel="next" with the last id returned, and an empty value on the last page.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote_plus

from mcp_server_connectwise.sandbox.errors import bad_request
from mcp_server_connectwise.sandbox.store import Record

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 1000


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"The value '{raw}' is not valid for {name}.") from None


def page_size(params: Mapping[str, str]) -> int:
    size = _int_param(params, "pageSize", DEFAULT_PAGE_SIZE)
    return DEFAULT_PAGE_SIZE if size < 1 else min(size, MAX_PAGE_SIZE)


def _link_url(url: str, raw_query: str, name: str, value: int) -> str:
    """`url` with the request's query minus `name`, then `name=value` last (some clients regex it out)."""
    kept = [
        part for part in raw_query.split("&") if part and unquote_plus(part.split("=", 1)[0]).lower() != name.lower()
    ]
    kept.append(f"{name}={value}")
    return f"{url}?{'&'.join(kept)}"


def navigable(
    records: list[Record], params: Mapping[str, str], url: str, raw_query: str
) -> tuple[list[Record], str | None]:
    """One page of `records` and its Link header value (None when there is a single page)."""
    size = page_size(params)
    page = max(_int_param(params, "page", 1), 1)  # [I] page < 1 is the first page, pageSize < 1 the default
    _int_param(params, "pageId", 0)  # bound (so checked) as ASP.NET binds every parameter, though unused here
    last = max((len(records) + size - 1) // size, 1)
    links = []
    if page > 1:
        links.append((1, "first"))
        links.append((min(page - 1, last), "prev"))
    if page < last:
        links.append((page + 1, "next"))
        links.append((last, "last"))
    header = ", ".join(f'<{_link_url(url, raw_query, "page", n)}>; rel="{rel}"' for n, rel in links) or None
    start = (page - 1) * size
    return records[start : start + size], header


def forward_only(
    records: list[Record], params: Mapping[str, str], url: str, raw_query: str
) -> tuple[list[Record], str]:
    """The page after `pageId` of `records` (already in id order) and its Link header value."""
    if params.get("orderBy"):
        raise bad_request("orderBy is not supported with forward-only pagination; results are ordered by id.")
    size = page_size(params)
    after = _int_param(params, "pageId", 0)
    # Records are in id order: skip to the first id after `pageId` by bisection.
    low, high = 0, len(records)
    while low < high:
        middle = (low + high) // 2
        if records[middle]["id"] <= after:
            low = middle + 1
        else:
            high = middle
    page = records[low : low + size]
    if page and low + size < len(records):
        return page, f'<{_link_url(url, raw_query, "pageId", page[-1]["id"])}>; rel="next"'
    return page, ""
