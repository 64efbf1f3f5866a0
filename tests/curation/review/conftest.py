"""Factories for review tests: vaults, notes, jobs, items and suggestions made with the ORM."""

import importlib
import itertools

import pytest
from django.contrib.auth.models import Group, Permission, User

from curation.models import Item, Job, Suggestion
from ingest.models import Note, Vault

_seq = itertools.count(1)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The queue's supersede sweep is throttled through the cache; start each test afresh."""
    from django.core.cache import cache

    cache.delete("curation:review:supersede-sweep")


@pytest.fixture
def vault(db):
    return Vault.objects.create(name="Main", root="/tmp/vault-main")


@pytest.fixture
def make_note(vault):
    def build(path=None, *, tags=(), frontmatter=None, body="Body text.", in_vault=None):
        path = path or f"notes/note-{next(_seq)}.md"
        folder = path.rpartition("/")[0]
        return Note.objects.create(
            vault=in_vault or vault,
            path=path,
            folder=folder,
            title=path.rpartition("/")[2].removesuffix(".md"),
            tags=list(tags),
            frontmatter=frontmatter if frontmatter is not None else {"tags": list(tags)},
            body=body,
        )

    return build


@pytest.fixture
def make_job(vault):
    def build(**kwargs):
        kwargs.setdefault("vault", vault)
        kwargs.setdefault("model", "claude-haiku-4-5")
        kwargs.setdefault("fields", ["tags", "description", "related"])
        kwargs.setdefault("state", Job.State.SUCCEEDED)
        return Job.objects.create(**kwargs)

    return build


@pytest.fixture
def make_suggestion(make_job):
    """suggest(note, field, value, job=None): one succeeded item (per job+note) and its suggestion."""

    def build(note, field, value, *, job=None):
        job = job or make_job()
        item, _ = Item.objects.get_or_create(
            job=job,
            note=note,
            defaults={"custom_id": f"n{note.pk}-j{job.pk}-{next(_seq)}", "state": "succeeded"},
        )
        return Suggestion.objects.create(
            item=item, note=note, job=job, field=field, value=value, model=job.model
        )

    return build


ROLES = importlib.import_module("curation.migrations.0004_roles").ROLES


def role(name: str) -> Group:
    """The group the data migration made; rebuilt the same way if a flush removed it."""
    group, created = Group.objects.get_or_create(name=name)
    if created:
        for dotted in ROLES[name]:
            app_label, codename = dotted.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    return group


def _user(username, group=None, **extra):
    user = User.objects.create_user(username, password=None, is_staff=True, **extra)
    if group:
        user.groups.add(role(group))
    return user


@pytest.fixture
def moderator(db):
    return _user("mod", "Moderator")


@pytest.fixture
def moderator2(db):
    return _user("mod2", "Moderator")


@pytest.fixture
def viewer(db):
    return _user("viewer", "Viewer")


@pytest.fixture
def curator(db):
    return _user("curator", "Curator")


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", password=None)


@pytest.fixture
def nobody(db):
    return _user("nobody")
