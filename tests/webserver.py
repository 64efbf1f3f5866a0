"""A local web server for tests that fetch pages: real HTTP on 127.0.0.1, routes set per test."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
