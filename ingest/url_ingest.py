"""Turning a web page into a vault note: fetch it safely, extract its text, write it, import it.

Fetching guards against a pasted address being used to reach the server's own network: only
http/https, every address the host resolves to must be public (unless
`VAULTCMS_URL_INGEST_ALLOW_PRIVATE`), the connection goes to the address that was checked
(so a second DNS answer cannot swap it), and each redirect hop is checked the same way.
"""

import datetime
import ipaddress
import logging
import os
import re
import socket
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urljoin, urlsplit, urlunsplit

import certifi
import urllib3
import yaml
from django.conf import settings
from django.utils import timezone

from ingest.importer import notes_import
from ingest.models import Note, Vault

log = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")
MAX_REDIRECTS = 5
USER_AGENT = "VaultCMS/1.0 (+url-ingest)"
# Characters that break a file name on some system or an Obsidian [[wikilink]].
UNSAFE_NAME_CHARS = re.compile(r'[\\/:*?"<>|#^\[\]{}%~`$!@&=+;]|[\x00-\x1f\x7f]')
MAX_NAME_BYTES = 120  # well under the 255-byte file name limit, leaving room for " 99.md"
MAX_FOLDER_NAME_BYTES = 255  # one folder's name, on every common file system
WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {
    f"lpt{i}" for i in range(10)
}


class UrlIngestError(Exception):
    """The page could not be turned into a note; the message says why, for the moderator."""


class DuplicateUrl(UrlIngestError):
    """A note with this `source` is already in the vault."""

    def __init__(self, message: str, note: Note):
        super().__init__(message)
        self.note = note


@dataclass
class Page:
    url: str  # after redirects
    content_type: str
    body: bytes


@dataclass
class Extracted:
    title: str
    markdown: str


def normalize_url(url: str) -> str:
    """The address to fetch and to deduplicate on: http(s) only, no fragment, no credentials."""
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlIngestError(f"not a valid web address: {url!r}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"{scheme}:" if scheme else "no scheme"
        raise UrlIngestError(f"only http:// and https:// addresses can be ingested, not {shown}")
    if not parts.hostname:
        raise UrlIngestError(f"the address has no host name: {url!r}")
    if parts.username is not None or parts.password is not None:
        raise UrlIngestError("addresses with a user name or password in them are not accepted")
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port is not None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_unspecified)


def resolve_host(host: str, port: int, *, allow_private: bool) -> list[str]:
    """Every address `host` resolves to, refusing the host if any of them is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlIngestError(f"cannot find the host {host!r}: {exc}") from None
    addresses: list[str] = []
    for info in infos:
        address = info[4][0].split("%", 1)[0]  # drop an IPv6 zone id
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UrlIngestError(f"cannot find the host {host!r}: no address")
    if not allow_private:
        for address in addresses:
            if not is_public_address(ipaddress.ip_address(address)):
                raise UrlIngestError(
                    f"refused: {host} resolves to {address}, a private, loopback or reserved "
                    "address (set VAULTCMS_URL_INGEST_ALLOW_PRIVATE=1 to allow it)"
                )
    return addresses


def fetch_page(
    url: str,
    *,
    timeout: float | None = None,
    max_bytes: int | None = None,
    allow_private: bool | None = None,
) -> Page:
    """GET an HTML page, following at most MAX_REDIRECTS redirects, each hop checked anew."""
    timeout = settings.VAULTCMS_URL_INGEST_TIMEOUT if timeout is None else timeout
    max_bytes = settings.VAULTCMS_URL_INGEST_MAX_BYTES if max_bytes is None else max_bytes
    if allow_private is None:
        allow_private = settings.VAULTCMS_URL_INGEST_ALLOW_PRIVATE
    deadline = time.monotonic() + timeout
    current = normalize_url(url)
    for _hop in range(MAX_REDIRECTS + 1):
        response = _get(current, deadline=deadline, allow_private=allow_private)
        try:
            if response.status in (301, 302, 303, 307, 308):
                location = response.headers.get("Location")
                if not location:
                    raise UrlIngestError(f"{current} redirects without saying where to")
                current = normalize_url(urljoin(current, location))
                continue
            if response.status != 200:
                raise UrlIngestError(
                    f"the page could not be fetched: {current} answered HTTP {response.status}"
                )
            content_type = response.headers.get("Content-Type", "")
            mime = content_type.split(";", 1)[0].strip().lower()
            if mime not in HTML_TYPES:
                raise UrlIngestError(
                    f"not an HTML page: {current} is {mime or 'of no stated type'}; "
                    "only web pages (text/html) can be ingested"
                )
            body = _read_limited(response, url=current, max_bytes=max_bytes, deadline=deadline)
            return Page(url=current, content_type=content_type, body=body)
        finally:
            response.release_conn()
    raise UrlIngestError(f"too many redirects (more than {MAX_REDIRECTS}) starting at {url}")


def _get(url: str, *, deadline: float, allow_private: bool) -> urllib3.BaseHTTPResponse:
    parts = urlsplit(url)
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolve_host(host, port, allow_private=allow_private)
    path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    host_header = parts.netloc
    last_error: Exception | None = None
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        timeout = urllib3.Timeout(connect=min(remaining, 10.0), read=remaining)
        # Connect to the checked address itself; TLS still verifies the certificate
        # against the host name.
        if parts.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                address, port, timeout=timeout, retries=False, maxsize=1,
                server_hostname=host, assert_hostname=host,
                cert_reqs="CERT_REQUIRED", ca_certs=certifi.where(),
            )  # fmt: skip
        else:
            pool = urllib3.HTTPConnectionPool(
                address, port, timeout=timeout, retries=False, maxsize=1
            )
        try:
            return pool.urlopen(
                "GET",
                path,
                headers={
                    "Host": host_header,
                    "User-Agent": USER_AGENT,
                    "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
                    "Accept-Encoding": "identity",
                },
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=False,
                assert_same_host=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            last_error = exc
    reason = _describe(last_error) if last_error else "timed out"
    raise UrlIngestError(f"the page could not be fetched: {url} is unreachable ({reason})")


def _describe(exc: Exception) -> str:
    if isinstance(exc, urllib3.exceptions.TimeoutError):
        return "timed out"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return "TLS certificate problem"
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    return type(exc).__name__


def _read_limited(response, *, url: str, max_bytes: int, deadline: float) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise UrlIngestError(
            f"the page is too large: {int(declared):,} bytes (limit {max_bytes:,})"
        )
    chunks: list[bytes] = []
    total = 0
    try:
        for chunk in response.stream(64 * 1024, decode_content=False):
            total += len(chunk)
            if total > max_bytes:
                raise UrlIngestError(f"the page is too large: over the {max_bytes:,} byte limit")
            if time.monotonic() > deadline:
                raise UrlIngestError(f"the page could not be fetched: {url} timed out")
            chunks.append(chunk)
    except urllib3.exceptions.HTTPError as exc:
        raise UrlIngestError(
            f"the page could not be fetched: {url} broke off ({_describe(exc)})"
        ) from None
    return b"".join(chunks)


def extract_page(page: Page) -> Extracted:
    """The page's main text as markdown, and its title (trafilatura does the reading)."""
    # Imported here, not at the top: a broken trafilatura install (it needs lxml_html_clean)
    # must only disable this form, not stop the whole app from starting.
    try:
        import trafilatura
    except ImportError as exc:
        log.error("url ingest unavailable: trafilatura cannot be imported: %s", exc)
        raise UrlIngestError(
            "adding notes from web addresses is not available on this server: "
            f"the page reader (trafilatura) cannot be loaded ({exc})"
        ) from None
    html = page.body
    markdown = trafilatura.extract(
        html,
        url=page.url,
        output_format="markdown",
        include_links=True,
        include_formatting=True,
        include_tables=True,
        include_comments=False,
        include_images=False,
    )
    if not markdown or not markdown.strip():
        raise UrlIngestError(f"no readable text found on {page.url}")
    metadata = trafilatura.extract_metadata(html, default_url=page.url)
    title = (getattr(metadata, "title", None) or "").strip()
    if not title:
        title = _first_heading(markdown) or urlsplit(page.url).hostname or "Web page"
    return Extracted(title=" ".join(title.split())[:300], markdown=markdown.strip())


def _first_heading(markdown: str) -> str:
    for line in markdown.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def safe_filename(title: str) -> str:
    """A file stem from a title: no separators, no link-breaking characters, bounded length."""
    name = unicodedata.normalize("NFC", title)
    name = UNSAFE_NAME_CHARS.sub(" ", name)
    name = " ".join(name.split()).strip(" .-")
    encoded = name.encode("utf-8")[:MAX_NAME_BYTES]
    name = encoded.decode("utf-8", errors="ignore").strip(" .-")
    if not name or name.lower() in WINDOWS_RESERVED:
        name = f"Web page {name}".strip()
    return name


def clean_folder(folder: str) -> str:
    """A folder inside the vault, as a relative posix path; refuses anything that leaves it."""
    folder = (folder or "").strip().replace("\\", "/").strip("/")
    if not folder:
        return ""
    parts = PurePosixPath(folder).parts
    for part in parts:
        if part in ("", ".", "..") or part.startswith("."):
            raise UrlIngestError(
                f"the folder {folder!r} is not allowed: use a plain path inside the vault"
            )
        if any(c in part for c in ':*?"<>|') or any(ord(c) < 32 for c in part):
            raise UrlIngestError(f"the folder {folder!r} has characters a file system refuses")
        if len(part.encode("utf-8")) > MAX_FOLDER_NAME_BYTES:
            raise UrlIngestError(
                f"the folder name {part[:40]!r}... is too long "
                f"(a file system allows {MAX_FOLDER_NAME_BYTES} bytes)"
            )
    return "/".join(parts)


def folder_in_vault(root: Path, folder: str) -> Path:
    """The real path of `folder` inside the vault; creates nothing.

    Resolved *before* anything is created: a folder of the vault that is a symbolic link to
    one outside it must not get a new subfolder there first and a refusal after.
    """
    root_real = Path(os.path.realpath(root))
    target = Path(os.path.realpath(root_real.joinpath(*folder.split("/")) if folder else root_real))
    if os.path.commonpath([root_real, target]) != str(root_real):
        raise UrlIngestError(f"the folder {folder!r} leads outside the vault")
    probe = target
    while probe != root_real and not probe.exists():
        probe = probe.parent
    if not probe.is_dir():  # the deepest part that exists must be a folder
        shown = probe.relative_to(root_real).as_posix()
        raise UrlIngestError(f"{shown!r} in the vault is a file, not a folder")
    return target


def note_text(*, url: str, title: str, markdown: str, created: datetime.datetime) -> str:
    meta = {"source": url, "title": title, "created": created.strftime("%Y-%m-%dT%H:%M:%SZ")}
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=10_000)
    body = markdown if markdown.lstrip().startswith("# ") else f"# {title}\n\n{markdown}"
    return f"---\n{front}---\n{body.rstrip()}\n"


def find_duplicate(*, vault: Vault, url: str) -> Note | None:
    return (
        Note.objects.filter(vault=vault, frontmatter__source=url)
        .exclude(state=Note.State.MISSING)
        .order_by("id")
        .first()
    )


def write_new_file(*, directory: Path, stem: str, text: str) -> Path:
    """Create `stem.md` in directory, or `stem 2.md`, ...: never replaces an existing file."""
    data = text.encode("utf-8")
    for n in range(1, 1000):
        path = directory / (f"{stem}.md" if n == 1 else f"{stem} {n}.md")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return path
    raise UrlIngestError(f"too many notes named {stem!r} in that folder")


def note_create_from_url(*, url: str, vault: Vault, folder: str = "") -> Note:
    """Fetch `url`, write it as a new note in `folder` of `vault`, import it and return the Note.

    Raises UrlIngestError (DuplicateUrl when the vault already has a note from this address)
    with a message for the moderator; nothing is written then.
    """
    normalized = normalize_url(url)
    folder = clean_folder(folder)
    root = Path(vault.root)
    if not root.is_dir():
        raise UrlIngestError(f"the vault folder {vault.root} does not exist on this server")
    existing = find_duplicate(vault=vault, url=normalized)
    if existing is not None:
        raise DuplicateUrl(f"already in the vault: {existing.path} has source {normalized}", existing)
    folder_in_vault(root, folder)  # refused before fetching anything

    page = fetch_page(normalized)
    if page.url != normalized:
        existing = find_duplicate(vault=vault, url=page.url)
        if existing is not None:
            raise DuplicateUrl(f"already in the vault: {existing.path} has source {page.url}", existing)
    extracted = extract_page(page)
    text = note_text(
        url=page.url, title=extracted.title, markdown=extracted.markdown, created=timezone.now()
    )
    if len(text.encode("utf-8")) > settings.VAULTCMS_MAX_NOTE_BYTES:
        raise UrlIngestError(
            f"the page's text is too large for a note (limit {settings.VAULTCMS_MAX_NOTE_BYTES:,} bytes)"
        )

    # Again after the fetch (the folders may have changed meanwhile), then created: only
    # folders whose real path is inside the vault, so no link can lead the mkdir out.
    directory = folder_in_vault(root, folder)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if os.path.realpath(directory) != str(directory):
            raise UrlIngestError(f"the folder {folder!r} leads outside the vault")
        path = write_new_file(directory=directory, stem=safe_filename(extracted.title), text=text)
    except OSError as exc:
        raise UrlIngestError(
            f"cannot write into the folder {folder!r}: {exc.strerror or exc}"
        ) from None
    rel = path.relative_to(os.path.realpath(root)).as_posix()
    log.info("url ingest vault=%s url=%s path=%s", vault.name, page.url, rel)

    notes_import(vault=vault, paths=[rel])  # this one file, not the whole vault
    note = Note.objects.get(vault=vault, path=rel)
    if note.state != Note.State.OK:
        raise UrlIngestError(f"{rel} was written but could not be imported: {note.reason}")
    return note
