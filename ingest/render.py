"""Markdown to HTML for previews, sanitized so nothing in a note runs in a reviewer's browser."""

import html as html_lib
import ipaddress
import re
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import markdown
import nh3
from django.conf import settings
from django.http.request import validate_host

ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}
URL_ATTRIBUTES = {"href", "src", "cite", "srcset", "longdesc"}


def _own_hosts() -> list[str]:
    """The names this site answers to (a wildcard `*` names no host in particular)."""
    hosts = [h for h in settings.ALLOWED_HOSTS if h != "*"]
    hosts += [urlsplit(o).hostname or "" for o in settings.CSRF_TRUSTED_ORIGINS]
    return [h for h in hosts if h] + ["localhost", ".localhost"]


def _is_local_address(host: str) -> bool:
    """127.0.0.1 in any spelling a browser accepts (`2130706433`, `0x7f.1`), or a private one."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        try:
            address = ipaddress.ip_address(socket.inet_aton(host))
        except OSError:
            return False
    return not address.is_global


def points_at_this_site(url: str) -> bool:
    """Whether a URL in a note leads the reviewer's browser to this site (or its network).

    Such a request carries the reviewer's session cookie (SameSite=Lax allows it for links),
    so a note could make whoever views it act on the app; relative URLs always stay here.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return True
    if parts.scheme in ("", "http", "https") and not parts.netloc:
        return not (parts.path == "" and not parts.query)  # `#section` only stays on the page
    host = (parts.hostname or "").rstrip(".")
    return bool(host) and (validate_host(host, _own_hosts()) or _is_local_address(host))


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute in URL_ATTRIBUTES and points_at_this_site(value):
        return None
    return value


def sanitize(html: str) -> str:
    return nh3.clean(
        html,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        attribute_filter=_attribute_filter,
    )


def render_markdown(text: str) -> str:
    """Markdown as safe HTML: raw HTML and scripts in the note are stripped, not executed;
    images and links pointing back at this site are dropped (their text stays)."""
    return sanitize(markdown.markdown(text, extensions=["fenced_code", "tables"]))


# [[Name]], [[Name|shown text]], [[Name#heading]] as they appear in sanitized HTML (escaped
# text); never across tags, so a link only ever wraps text.
WIKILINK = re.compile(r"\[\[([^\[\]|#^<>]+?)(#[^\[\]|<>]*)?(?:\|([^\[\]<>]*))?\]\]")
_CODE = re.compile(r"(<pre\b.*?</pre>|<code\b.*?</code>)", re.S)
# A whole tag of nh3's output (attribute values always double-quoted, `"` escaped inside), so
# a wikilink in an attribute (an image's alt text) is never turned into markup.
_TAG = re.compile(r'(<(?:[^>"]|"[^"]*")*>)')


def link_wikilinks(html: str, resolve: Callable[[str], str | None]) -> str:
    """Turn the wikilinks of sanitized HTML into links to the notes they name.

    `resolve(name)` gives the linked note's URL, or None (the name is then shown dimmed, not
    linked). Code blocks and attribute values are left alone. Added after sanitizing (so the
    same-site rule, which would drop these links to the app's own pages, does not see them):
    the URL comes from `resolve`, never from the note, and is escaped here.
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
        pieces = _TAG.split(parts[i])
        for j in range(0, len(pieces), 2):  # text between tags only
            pieces[j] = WIKILINK.sub(link, pieces[j])
        parts[i] = "".join(pieces)
    return "".join(parts)


def wikilink_names(text: str) -> list[str]:
    """The note names a markdown text links to, in order, once each."""
    return list(dict.fromkeys(m.group(1).strip() for m in WIKILINK.finditer(text)))
