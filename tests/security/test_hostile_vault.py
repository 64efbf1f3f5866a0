"""A hostile vault through every door: import, curate (emulator), review and export.

The vault holds what a probe of the running app tried: a FIFO named like a note, frontmatter
nested 490 lists deep, an alias bomb, symlinks (a note and a folder) leading out of the vault,
a file over the size limit, binary and badly encoded files, hostile file names, and a note
whose body tries script, handlers and same-site URLs (the review lock of another note).

After the whole run: every file outside the vault and every file the app refused is
byte-identical (sha256) to what it was, nothing was created outside the vault, the FIFO is
still a FIFO, and no request answered 500.
"""

import contextlib
import hashlib
import os
import signal
import stat
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from curation import operations
from curation.models import Operation, Review, ReviewLock, Suggestion
from ingest.models import Note, Vault
from tests.curation.review.conftest import role
from tests.curation.review.test_note_page import live_script

pytestmark = pytest.mark.django_db

MAX_BYTES = 64 * 1024
DEPTH = 490
GOOD = "---\ntitle: {0}\ntags: [reading]\n---\n# {0}\n\nNotes on {0}: retrieval, agents, tools.\n"
BOMB = (
    "---\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
    "---\nBoom.\n"
)


class Blocked(BaseException):
    """The alarm: not an OSError, so no `except OSError` in the app can swallow it."""


@contextlib.contextmanager
def bounded(seconds: int = 60):
    def expire(signum, frame):
        raise Blocked(f"still blocked after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def sha256_tree(folder: Path) -> dict[str, str]:
    """Every entry under `folder` (links not followed): file hash, or its kind."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as fh:
                    found[path] = hashlib.sha256(fh.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                found[path] = f"link -> {os.readlink(path)}"
            else:
                found[path] = stat.filemode(st.st_mode)[0]
    return found


@pytest.fixture
def hostile(tmp_path, settings):
    settings.VAULTCMS_MAX_NOTE_BYTES = MAX_BYTES
    outside = tmp_path / "outside"
    (outside / "private").mkdir(parents=True)
    (outside / "secret.md").write_text("---\ntitle: Secret\n---\nserver secret\n")
    (outside / "private" / "other secret.md").write_text("# other secret\n")
    root = tmp_path / "vault"
    (root / "Reading").mkdir(parents=True)
    good = {
        "Alpha.md": GOOD.format("Alpha"),
        "Reading/Beta.md": GOOD.format("Beta"),
        "Reading/Gamma.md": GOOD.format("Gamma"),
        "<script>alert(1)<script> name.md": GOOD.format("Script name"),
        "\u202egnp.exe.md": GOOD.format("Right to left"),
        "#tag ^block [x] |pipe.md": GOOD.format("Link breaking"),
        "new\nline.md": GOOD.format("Newline"),
        "-rf --no-preserve-root.md": GOOD.format("Dashes"),
        ("é" * 120) + ".md": GOOD.format("Long name"),
        "bait.md": (
            "---\ntitle: Bait\n---\n# Bait\n\n<script>alert('xss')</script>\n"
            "<img src=x onerror=alert(1)>\n[click](javascript:alert(2))\n"
            "![lock](/curation/review/note/1/)\n"
            "![lock](http://127.0.0.1/curation/review/note/1/)\n"
        ),
    }
    refused = {
        "deep.md": ("---\nextra: " + "[" * DEPTH + "]" * DEPTH + "\n---\nDeep.\n").encode(),
        "bomb.md": BOMB.encode(),
        "huge.md": b"---\ntitle: Huge\n---\n" + b"x" * (MAX_BYTES + 10),
        "binary.md": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
        "latin1.md": "---\ntitle: caf\xe9\n---\nd\xe9j\xe0 vu\n".encode("latin-1"),
        "empty.md": b"",
        "frontmatter only.md": b"---\ntitle: Nothing\n---\n",
        "not a mapping.md": b"---\n- a\n- b\n---\nList.\n",
        "bad yaml.md": b"---\ntitle: [unclosed\n---\nBody.\n",
    }
    for rel, text in good.items():
        (root / rel).write_text(text, encoding="utf-8")
    for rel, data in refused.items():
        (root / rel).write_bytes(data)
    (root / os.fsdecode(b"bad \xff name.md")).write_text(GOOD.format("Bad bytes"))
    os.mkfifo(root / "x.md")
    os.mkfifo(root / "Reading" / "pipe.md")
    (root / "link-out.md").symlink_to(outside / "secret.md")
    (root / "Linked").symlink_to(outside / "private")
    (root / "dangling.md").symlink_to(tmp_path / "nowhere.md")
    return {"tmp": tmp_path, "root": root, "outside": outside, "good": good, "refused": refused}


def operation_of(url: str) -> int:
    return int(url.rstrip("/").rsplit("/", 1)[1])


def work(response) -> str:
    """Run the operation an admin action (followed) led to, as a worker would; its page URL."""
    url = response.redirect_chain[-1][0]
    operations.operation_run(operation_id=operation_of(url))
    return url


class Doors:
    """Clients for each role; every response is checked: no door may answer 500."""

    def __init__(self):
        self.responses: list[tuple[str, str, int]] = []
        self.clients = {}
        admin = User.objects.create_superuser("hostile-admin", password=None)
        mod = User.objects.create_user("hostile-mod", password=None, is_staff=True)
        mod.groups.add(role("Moderator"))
        viewer = User.objects.create_user("hostile-viewer", password=None, is_staff=True)
        viewer.groups.add(role("Viewer"))
        for name, user in (("admin", admin), ("mod", mod), ("viewer", viewer)):
            client = Client(raise_request_exception=False)
            client.force_login(user)
            self.clients[name] = client

    def _seen(self, method, url, response):
        self.responses.append((method, url, response.status_code))
        return response

    def get(self, who: str, url: str, **kwargs):
        return self._seen("GET", url, self.clients[who].get(url, **kwargs))

    def post(self, who: str, url: str, data=None, **kwargs):
        return self._seen("POST", url, self.clients[who].post(url, data or {}, **kwargs))

    def errors(self) -> list[tuple[str, str, int]]:
        return [r for r in self.responses if r[2] >= 500]


def test_a_hostile_vault_through_import_curate_review_and_export(hostile, emulator, settings):
    settings.ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
    settings.CURATION_POLL_MIN_SECONDS = 0.01
    settings.CURATION_POLL_SECONDS = 0.05
    root, outside = hostile["root"], hostile["outside"]
    outside_before = sha256_tree(outside)
    vault_before = sha256_tree(root)
    tmp_before = set(sha256_tree(hostile["tmp"]))

    # -- import: the command, then the admin's Re-import, each in bounded time ------------
    out = StringIO()
    with bounded():
        call_command("import_vault", str(root), "--name", "Hostile", stdout=out)
    report = out.getvalue()
    vault = Vault.objects.get(name="Hostile")
    skipped = dict(Note.objects.filter(vault=vault, state=Note.State.SKIPPED)
                   .values_list("path", "reason"))  # fmt: skip
    assert skipped["x.md"] == "not a regular file (a named pipe)"
    assert skipped["Reading/pipe.md"] == "not a regular file (a named pipe)"
    assert skipped["deep.md"] == "frontmatter nests deeper than 100 levels"
    assert skipped["link-out.md"] == "symlink to a file outside the vault"
    assert skipped["huge.md"].startswith("too large")
    assert "binary" in skipped["binary.md"] and "not valid UTF-8" in skipped["latin1.md"]
    assert "too large" in skipped["bomb.md"] or "nests" in skipped["bomb.md"]
    for rel in hostile["refused"]:
        assert rel in skipped, rel
    assert not any(p.startswith("Linked/") for p in Note.objects.values_list("path", flat=True))
    ok = set(Note.objects.filter(vault=vault, state=Note.State.OK).values_list("path", flat=True))
    assert set(hostile["good"]) <= ok
    assert "skipped x.md: not a regular file (a named pipe)" in report

    doors = Doors()
    with bounded():
        page = doors.post("admin", reverse("admin:ingest_vault_changelist"),
                          {"action": "reimport_vaults", "_selected_action": [vault.pk]},
                          follow=True)  # fmt: skip
        page = doors.get("admin", work(page))  # the re-import runs on a worker: run it here
    assert "Re-import" in page.content.decode() and "Hostile" in page.content.decode()
    # The vault's folder cannot be pointed elsewhere from the admin.
    doors.post("admin", reverse("admin:ingest_vault_change", args=[vault.pk]),
               {"name": "Hostile", "root": str(outside)})  # fmt: skip
    vault.refresh_from_db()
    assert vault.root == str(root.resolve())

    # -- every admin page of every note, as each role --------------------------------------
    notes = list(Note.objects.filter(vault=vault))
    for who in ("admin", "mod", "viewer"):
        doors.get(who, reverse("admin:ingest_note_changelist"))
        doors.get(who, reverse("admin:ingest_note_changelist") + "?q=%00%ff<script>")
        for note in notes:
            doors.get(who, reverse("admin:ingest_note_change", args=[note.pk]))

    # -- curate every note that imported, through the command and the emulator -------------
    out = StringIO()
    with bounded(120):
        call_command("curate", "--vault", "Hostile", "--wait", stdout=out)
    assert Suggestion.objects.filter(note__vault=vault).exists()
    assert not Suggestion.objects.filter(note__state=Note.State.SKIPPED).exists()

    # -- review: pages as each role (a GET never locks), then decisions --------------------
    bait = Note.objects.get(vault=vault, path="bait.md")
    for who in ("mod", "viewer", "admin"):
        for note in notes:
            doors.get(who, reverse("curation:review_note", args=[note.pk]))
    assert not ReviewLock.objects.exists()
    html = doors.get("mod", reverse("curation:review_note", args=[bait.pk])).content.decode()
    assert live_script(html) == []
    for suggestion in Suggestion.objects.filter(note__vault=vault):
        url = reverse("curation:review_note", args=[suggestion.note_id])
        doors.post("mod", reverse("curation:review_note_lock", args=[suggestion.note_id]))
        doors.post("mod", url, {"suggestion_id": suggestion.pk, "action": "approve",
                                "expected_state": "pending"})  # fmt: skip
    doors.post("mod", reverse("curation:review_note", args=[bait.pk]),
               {"suggestion_id": "abc", "action": "approve"})  # fmt: skip
    doors.get("mod", reverse("admin:curation_suggestion_changelist"))
    doors.get("viewer", reverse("admin:curation_review_changelist"))
    doors.get("viewer", reverse("curation:review_taxonomy_vault", args=[vault.pk]))
    assert Review.objects.filter(suggestion__note__vault=vault).exists()

    # -- export: the dry run, the viewer's preview, the admin action, the command ----------
    with bounded():
        out = StringIO()
        call_command("export_vault", "--vault", "Hostile", "--dry-run", stdout=out)
        assert sha256_tree(root) == vault_before
        preview = doors.post("viewer", reverse("admin:ingest_vault_changelist"),
                             {"action": "preview_export_vaults", "_selected_action": [vault.pk]},
                             follow=True)  # fmt: skip
        assert preview.status_code == 200
        assert doors.get("viewer", work(preview)).status_code == 200
        assert sha256_tree(root) == vault_before
        exported = doors.post("admin", reverse("admin:ingest_vault_changelist"),
                              {"action": "export_approved_vaults",
                               "_selected_action": [vault.pk]}, follow=True)  # fmt: skip
        confirmed = doors.post("admin", reverse("curation:operation-confirm",
                                                args=[Operation.objects.get(
                                                    id=operation_of(work(exported))).id]),
                               follow=True)  # fmt: skip
        assert doors.get("admin", work(confirmed)).status_code == 200
        out = StringIO()
        try:
            call_command("export_vault", "--vault", "Hostile", stdout=out)
        except CommandError:
            pass  # a note reported as not exported is an answer, not a crash
    assert Note.objects.get(vault=vault, path="Alpha.md").tags != ["reading"]

    # -- the web form cannot write through the folder link either --------------------------
    response = doors.post("mod", reverse("admin:ingest_note_from_url"),
                          {"url": "https://example.invalid/x", "vault": vault.pk,
                           "folder": "Linked/new"})  # fmt: skip
    assert "leads outside the vault" in response.content.decode()

    # -- what must not have changed --------------------------------------------------------
    assert doors.errors() == []
    assert sha256_tree(outside) == outside_before
    vault_after = sha256_tree(root)
    for rel in [*hostile["refused"], "x.md", "Reading/pipe.md", "link-out.md", "Linked",
                "dangling.md"]:  # fmt: skip
        path = str(root / rel)
        assert vault_after[path] == vault_before[path], rel
    assert stat.S_ISFIFO(os.lstat(root / "x.md").st_mode)
    created = set(sha256_tree(hostile["tmp"])) - tmp_before
    assert all(p.startswith(str(root) + os.sep) for p in created), created
    written = [p for p in vault_after if vault_after[p] != vault_before.get(p)]
    assert written and all(p.endswith(".md") for p in written)
