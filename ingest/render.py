"""Markdown to HTML for previews, sanitized so nothing in a note runs in a reviewer's browser."""

import ipaddress
import socket
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
