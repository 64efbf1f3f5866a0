"""A local web server for URL-ingest tests: real HTTP on 127.0.0.1, routes set per test."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's spelling)
        self.server.hits.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"not found")
            return
        status, headers, body = route
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers and self.path not in self.server.unsized:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        pass


class WebServer:
    def __init__(self):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.routes = {}
        self.httpd.hits = []
        self.httpd.unsized = set()  # paths answered without Content-Length
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def hits(self) -> list[str]:
        return self.httpd.hits

    def page(self, path: str, html: str, content_type: str = "text/html; charset=utf-8"):
        self.httpd.routes[path] = (200, {"Content-Type": content_type}, html.encode("utf-8"))
        return self.base + path

    def raw(self, path: str, status: int, headers: dict, body: bytes | None = b""):
        self.httpd.routes[path] = (status, headers, body)
        return self.base + path

    def redirect(self, path: str, location: str, status: int = 302):
        return self.raw(path, status, {"Location": location}, b"")


@pytest.fixture
def web_server():
    server = WebServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        server.thread.join(timeout=5)


ARTICLE = """<!doctype html>
<html><head><title>{title}</title><meta charset="utf-8"></head>
<body>
<nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<article>
<h1>{title}</h1>
<p>Retrieval augmented generation combines a search step with a language model, so the model
answers from documents it was given rather than from memory alone. This paragraph is long
enough for an extractor to treat it as the main text of the page and not as boilerplate.</p>
<p>A second paragraph explains <strong>chunking</strong>, embeddings and the
<a href="https://example.org/rerank">reranking step</a> that orders the retrieved passages
before they are handed to the model, which matters a great deal for answer quality.</p>
<ul><li>Chunk the documents</li><li>Embed the chunks</li><li>Retrieve and rerank</li></ul>
</article>
<footer>Copyright 2026 Example Corp. All rights reserved.</footer>
</body></html>
"""


@pytest.fixture
def article_html():
    def build(title: str = "Retrieval Augmented Generation, explained") -> str:
        return ARTICLE.format(title=title)

    return build
