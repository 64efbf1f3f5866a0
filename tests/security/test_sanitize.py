"""Note text and model output reach a browser only through nh3: no script, handler or javascript: URL."""

import re
from html.parser import HTMLParser

import pytest
from django.test import Client

from ingest.render import render_markdown, sanitize
from tests.security.crawl import all_urls, populate

PAYLOADS = [
    "<script>alert('xss')</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert('xss')>",
    "<svg onload=alert('xss')></svg>",
    "<body onload=alert('xss')>",
    "<a href=\"javascript:alert('xss')\">click</a>",
    "<a href=\"JaVaScRiPt:alert('xss')\">click</a>",
    "<a href=\"&#106;avascript:alert('xss')\">click</a>",
    "<iframe src=\"javascript:alert('xss')\"></iframe>",
    "<div style=\"background:url(javascript:alert('xss'))\">x</div>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert('xss')>",
    "[click](javascript:alert('xss'))",
    "![img](javascript:alert('xss'))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
]

ACTIVE_TAGS = {"script", "iframe", "svg", "math", "object", "embed", "style", "base"}
URL_ATTRS = {"href", "src", "action", "formaction", "xlink:href", "data"}


class LiveMarkup(HTMLParser):
    """Finds markup a browser would run: tags, handler attributes, script URLs (not escaped text)."""

    def __init__(self, *, only_marked: bool):
        super().__init__(convert_charrefs=True)
        self.only_marked = only_marked  # admin pages have their own scripts: flag only ours
        self.found: list[str] = []
        self.in_active = None

    def marked(self, text: str) -> bool:
        return not self.only_marked or "xss" in (text or "").lower()

    def handle_starttag(self, tag, attrs):
        if tag in ACTIVE_TAGS or (tag == "body" and not self.only_marked):
            self.in_active = tag
            if not self.only_marked:
                self.found.append(f"<{tag}>")
        for name, value in attrs:
            value = value or ""
            squashed = re.sub(r"[\x00-\x20]", "", value).lower()
            if name.startswith("on") and self.marked(value):
                self.found.append(f"{tag} {name}={value!r}")
            elif name in URL_ATTRS and squashed.startswith(("javascript:", "data:", "vbscript:")) \
                    and self.marked(value + ("xss" if "base64" in squashed else "")):
                self.found.append(f"{tag} {name}={value!r}")
            elif name == "style" and not self.only_marked:
                self.found.append(f"{tag} style")

    def handle_endtag(self, tag):
        if tag == self.in_active:
            self.in_active = None

    def handle_data(self, data):
        # Our payload's own script body, i.e. it broke out of its text; data in an escaped
        # JSON <script> (json_script) stays inside a string and is harmless.
        if self.in_active and self.only_marked and data.strip().startswith("alert('xss"):
            self.found.append(f"<{self.in_active}> {data[:60]!r}")


def dangerous(html: str, *, only_marked: bool = False) -> list[str]:
    parser = LiveMarkup(only_marked=only_marked)
    parser.feed(html)
    parser.close()
    return parser.found


@pytest.mark.parametrize("payload", PAYLOADS)
def test_render_markdown_neutralises(payload):
    html = render_markdown(f"# Title\n\nBefore {payload} after\n")
    assert dangerous(html) == [], html
    assert "<h1>Title</h1>" in html


@pytest.mark.parametrize("payload", PAYLOADS)
def test_sanitize_neutralises_model_output(payload):
    assert dangerous(sanitize(f"<p>{payload}</p>")) == []


def test_safe_markup_survives():
    html = render_markdown("**bold** [link](https://example.org) `code`\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    assert "<strong>bold</strong>" in html
    assert 'href="https://example.org"' in html and "noopener" in html
    assert "<code>code</code>" in html and "<table>" in html


@pytest.mark.django_db
def test_no_admin_page_shows_a_live_payload(django_user_model, settings):
    """Every page a superuser can open, with notes and suggestions full of payloads."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    owner = django_user_model.objects.create_superuser("sec-owner", password="x")
    populate(owner=owner)
    client = Client(raise_request_exception=False)
    client.force_login(owner)
    problems, rendered = [], 0
    for url in all_urls():
        if url.name in ("admin:logout",):
            continue
        response = client.get(url.path)
        if response.status_code >= 500:
            problems.append(f"GET {url.path} ({url.name}) -> {response.status_code}")
            continue
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        rendered += 1
        text = response.content.decode("utf-8", "replace")
        problems += [f"{url.path}: {found}" for found in dangerous(text, only_marked=True)]
    assert rendered > 10
    assert problems == []


def test_the_detector_sees_live_payloads_and_ignores_escaped_ones():
    live = "<p>x</p><script>alert('xss1')</script><img src=x onerror=alert('xss2')>" \
           "<a href=\" javascript:alert('xss3')\">a</a>"
    assert len(dangerous(live, only_marked=True)) == 3
    escaped = "<p>&lt;script&gt;alert('xss1')&lt;/script&gt; onerror=alert('xss2')</p>" \
              "<input value=\"&lt;img src=x onerror=alert('xss2')&gt;\">"
    assert dangerous(escaped, only_marked=True) == []


SAME_SITE = [
    "![x](/curation/review/note/13/)",
    "![x](../13/)",
    "![x](13/)",
    "![x](?claim=1)",
    "![x](//127.0.0.1:8000/curation/review/note/13/)",
    "![x](http://127.0.0.1:8000/curation/review/note/13/)",
    "![x](https://localhost/admin/logout/)",
    "![x](http://LOCALHOST./ingest/note/)",
    "![x](http://2130706433/curation/review/note/13/)",
    "![x](http://0x7f.1/curation/review/note/13/)",
    "![x](http://[::1]:8000/curation/review/note/13/)",
    "![x](http://192.168.1.1/router/reboot)",
    "[open](/curation/review/note/13/)",
    "[open](http://127.0.0.1:8000/curation/review/note/13/)",
    '<img src="/curation/review/note/13/">',
]


@pytest.mark.parametrize("text", SAME_SITE)
def test_urls_back_to_this_site_are_dropped(text, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    html = render_markdown(text)
    assert "review/note" not in html and "admin" not in html and "ingest" not in html
    assert "router" not in html and "src=" not in html and "href=" not in html


def test_other_sites_links_and_anchors_stay(settings):
    settings.ALLOWED_HOSTS = ["vault.example.org"]
    html = render_markdown(
        "[a](https://example.org/page) ![i](https://img.example.net/x.png) [toc](#top) "
        "[same](https://vault.example.org/ingest/note/) [sub](https://a.vault.example.org/)"
    )
    assert 'href="https://example.org/page"' in html
    assert 'src="https://img.example.net/x.png"' in html
    assert 'href="#top"' in html
    assert "vault.example.org/ingest" not in html
