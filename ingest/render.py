"""Markdown to HTML for previews, sanitized so nothing in a note runs in a reviewer's browser."""

import html as html_lib
import re
from collections.abc import Callable

import markdown
import nh3

ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


def sanitize(html: str) -> str:
    return nh3.clean(html, url_schemes=ALLOWED_URL_SCHEMES, link_rel="noopener noreferrer nofollow")


def render_markdown(text: str) -> str:
    """Markdown as safe HTML: raw HTML and scripts in the note are stripped, not executed."""
    return sanitize(markdown.markdown(text, extensions=["fenced_code", "tables"]))


# [[Name]], [[Name|shown text]], [[Name#heading]] as they appear in sanitized HTML (escaped
# text); never across tags, so a link only ever wraps text.
WIKILINK = re.compile(r"\[\[([^\[\]|#^<>]+?)(#[^\[\]|<>]*)?(?:\|([^\[\]<>]*))?\]\]")
_CODE = re.compile(r"(<pre\b.*?</pre>|<code\b.*?</code>)", re.S)


def link_wikilinks(html: str, resolve: Callable[[str], str | None]) -> str:
    """Turn the wikilinks of sanitized HTML into links to the notes they name.

    `resolve(name)` gives the linked note's URL, or None (the name is then shown dimmed, not
    linked). Code blocks are left alone. Added after sanitizing, with the URL escaped here.
    """

    def link(match: re.Match) -> str:
        name = html_lib.unescape(match.group(1)).strip()
        shown = match.group(3) or match.group(1)  # already escaped text
        url = resolve(name)
        if url is None:
            return f'<span class="vc-wikilink vc-missing" title="no such note">{shown}</span>'
        return f'<a class="vc-wikilink" href="{html_lib.escape(url)}">{shown}</a>'

    parts = _CODE.split(html)
    for i in range(0, len(parts), 2):
        parts[i] = WIKILINK.sub(link, parts[i])
    return "".join(parts)


def wikilink_names(text: str) -> list[str]:
    """The note names a markdown text links to, in order, once each."""
    return list(dict.fromkeys(m.group(1).strip() for m in WIKILINK.finditer(text)))
