"""Markdown to HTML for previews, sanitized so nothing in a note runs in a reviewer's browser."""

import markdown
import nh3

ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


def sanitize(html: str) -> str:
    return nh3.clean(html, url_schemes=ALLOWED_URL_SCHEMES, link_rel="noopener noreferrer nofollow")


def render_markdown(text: str) -> str:
    """Markdown as safe HTML: raw HTML and scripts in the note are stripped, not executed."""
    return sanitize(markdown.markdown(text, extensions=["fenced_code", "tables"]))
