"""Browser tests: Playwright driving Debian's Chromium (launched by its path) against a live server.

Skipped, with the reason in `pytest -ra` output, when Playwright or Chromium is missing
(`bash scripts/install-browser.sh` installs Chromium; `playwright install` is never used).
Screenshots of each step go to test-artifacts/browser/<test name>/.
"""

import itertools
import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("VAULTCMS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
TIMEOUT_MS = 15_000
PASSWORD = "browser-test-pw"


def _skip_reason() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "browser tests skipped: playwright is not installed (pip install -r requirements-dev.txt)"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (
            f"browser tests skipped: Chromium not found at {CHROMIUM} "
            "(run `bash scripts/install-browser.sh`, or set VAULTCMS_CHROMIUM)"
        )
    return None


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "extra_notes(n): add n generated notes to the browser tests' sample vault"
    )


def pytest_collection_modifyitems(config, items):
    reason = _skip_reason()
    for item in items:
        if "tests/browser/" in item.nodeid.replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module; stopped (and the event loop with it) when the module ends."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop in this thread, which makes Django refuse
    # ORM calls from the test body ("async context"); the calls are in fact synchronous.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as p:
            chromium = p.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000
            )
            try:
                yield chromium
            finally:
                chromium.close()


@pytest.fixture
def artifacts(request):
    """A clean folder for this test's screenshots."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:100]
    folder = ARTIFACTS / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Session:
    """One person's browser context: log in, go to pages, screenshot each step."""

    def __init__(self, *, browser, base_url: str, folder: Path, label: str, steps):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.base_url = base_url
        self.folder = folder
        self.label = label
        self.steps = steps  # shared by the test's sessions, so files sort in story order

    def go(self, path: str):
        self.page.goto(self.base_url + path)
        return self.page

    def login(self, username: str, password: str = PASSWORD):
        self.go("/login/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.click("input[type=submit]")
        self.page.wait_for_selector("#user-tools")
        return self.page

    def shot(self, name: str) -> Path:
        slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")
        path = self.folder / f"{next(self.steps):02d}-{self.label}-{slug}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self):
        self.context.close()


@pytest.fixture
def open_session(browser, live_server, artifacts):
    """open_session(label) -> a fresh, isolated browser context (its own cookies)."""
    sessions: list[Session] = []
    steps = itertools.count(1)

    def open_(label: str = "user") -> Session:
        session = Session(
            browser=browser, base_url=live_server.url, folder=artifacts, label=label, steps=steps
        )
        sessions.append(session)
        return session

    yield open_
    for session in sessions:
        session.close()


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def users(transactional_db, django_user_model):
    """A superuser and two moderators, with the roles the migrations create (recreated here,
    since transactional tests empty every table after each test)."""
    from django.contrib.auth.models import Group, Permission

    admin = django_user_model.objects.create_superuser("admin", password=PASSWORD)
    review = Permission.objects.get(codename="review_suggestion")
    moderators = Group.objects.get_or_create(name="Moderator")[0]
    moderators.permissions.add(review, *Permission.objects.filter(codename__startswith="view_"))
    mods = []
    for name in ("alice", "bob"):
        user = django_user_model.objects.create_user(name, password=PASSWORD, is_staff=True)
        user.groups.add(moderators)
        mods.append(user)
    return {"admin": admin, "alice": mods[0], "bob": mods[1]}


@pytest.fixture
def sample_vault(transactional_db, tmp_path, request):
    """A copy of the repository's sample vault, imported (33 notes, one broken file).

    A test marked `@pytest.mark.extra_notes(n)` gets n more notes in `Reading/`, so the
    notes list runs over more than one page.
    """
    from ingest.importer import vault_import

    root = tmp_path / "sample_vault"
    shutil.copytree(Path(__file__).resolve().parents[2] / "sample_vault", root)
    marker = request.node.get_closest_marker("extra_notes")
    for i in range(marker.args[0] if marker else 0):
        (root / "Reading").mkdir(exist_ok=True)
        (root / "Reading" / f"Reading note {i:02d}.md").write_text(
            f"---\ntitle: Reading note {i:02d}\n---\n# Reading note {i:02d}\n\n"
            f"Notes on chapter {i} of a book about distributed systems and consensus.\n",
            encoding="utf-8",
        )
    vault, _ = vault_import(root=root, name="Sample vault")
    return vault


@pytest.fixture
def curated(sample_vault, emulator, settings):
    """curated(note_ids) -> the Job, run to its end against the in-process API emulator."""
    from curation.engine import jobs

    settings.CURATION_POLL_MIN_SECONDS = 0.01
    settings.CURATION_POLL_SECONDS = 0.05

    def run(note_ids, fields=("tags", "description", "related"), mode="auto"):
        job = jobs.job_create(notes=list(note_ids), fields=list(fields), mode=mode)
        assert jobs.job_run(job_id=job.id, sleep=lambda s: None) is True
        job.refresh_from_db()
        return job

    return run
