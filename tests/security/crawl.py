"""Every URL the project serves, with its path parameters filled from rows that exist.

Walks `get_resolver()` recursively, so a view added anywhere (admin, curation, ingest) is
crawled without this file knowing it. Rows are made for every model of the project's apps,
each text field holding MARKER (and script payloads), so a page that leaks data is visible.
"""

import re
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.urls import NoReverseMatch, URLResolver, get_resolver, reverse
from django.utils import timezone

MARKER = "CRAWLDATA"
# Script, event-handler and javascript: payloads, in every text a page may show.
PAYLOAD = f"{MARKER}<script>alert('xss1')</script><img src=x onerror=alert('xss2')>"
BODY = (
    f"# {MARKER} heading\n\n{PAYLOAD}\n\n[click](javascript:alert('xss3'))\n\n"
    f"<a href=\"javascript:alert('xss4')\">x</a> <svg onload=alert('xss5')></svg>\n"
)
PROJECT_APPS = ("ingest", "curation")


@dataclass(frozen=True)
class Url:
    path: str
    name: str  # "namespace:name", or the route for an unnamed pattern


def walk(resolver=None, namespace=None, prefix=""):
    """(route text, namespace, name, parameter names) for every leaf pattern."""
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        params = list(entry.pattern.regex.groupindex)
        if isinstance(entry, URLResolver):
            ns = ":".join(x for x in (namespace, entry.namespace) if x) or None
            for route, inner_ns, name, inner in walk(entry, ns, prefix + str(entry.pattern)):
                yield route, inner_ns, name, params + inner
        else:
            yield prefix + str(entry.pattern), namespace, entry.name, params


def _model_named(token: str):
    token = token.lower().replace("_", "")
    for model in apps.get_models():
        if model._meta.model_name == token:
            return model
    return None


def _model_for(url_name: str, param: str):
    """Which model's id a parameter wants: admin names say it, other views say it in the name."""
    if url_name:
        for model in apps.get_models():
            prefix = f"{model._meta.app_label}_{model._meta.model_name}_"
            if url_name.startswith(prefix):
                return model
    base = re.sub(r"_(id|pk)$", "", param)
    if base not in ("id", "pk", "object"):
        model = _model_named(base)
        if model is not None:
            return model
    for token in re.split(r"[_\-]", url_name or ""):
        model = _model_named(token)
        if model is not None:
            return model
    return None


def _value_for(url_name: str, param: str, route: str) -> list[str]:
    if param == "app_label":
        found = re.search(r"\(\?P<app_label>([^)]*)\)", route)
        return found.group(1).split("|") if found else ["ingest"]
    if param == "content_type_id":
        from ingest.models import Note

        return [str(ContentType.objects.get_for_model(Note).pk)]
    if url_name == "view_on_site" and param == "object_id":
        from ingest.models import Note

        return [str(Note.objects.order_by("pk").first().pk)]
    model = _model_for(url_name, param)
    if model is not None:
        row = model._default_manager.order_by("pk").first()
        if row is not None:
            return [str(row.pk)]
    if param in ("url",):
        return ["no-such-page/"]
    from ingest.models import Note

    note = Note.objects.order_by("pk").first()
    return [str(note.pk) if note else "1"]


def all_urls() -> list[Url]:
    urls: dict[str, Url] = {}
    for route, namespace, name, params in walk():
        values: list[dict] = [{}]
        for param in params:
            values = [{**v, param: choice} for v in values for choice in _value_for(name, param, route)]
        for kwargs in values:
            path = None
            if name:
                full = f"{namespace}:{name}" if namespace else name
                try:
                    path = reverse(full, kwargs=kwargs)
                except NoReverseMatch:
                    path = None
            if path is None:
                path = "/" + re.sub(r"^\^|\$$", "", route)
                path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m, kwargs=kwargs: kwargs.get(m.group(1), "x"), path)
                path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m, kwargs=kwargs: kwargs.get(m.group(1), "1"), path)
                label = route
            else:
                label = full
            urls.setdefault(path, Url(path=path, name=label))
    return sorted(urls.values(), key=lambda u: u.path)


def _fill(field, model):
    """A value for a required field of a model this file does not know."""
    if field.choices:
        return field.choices[0][0]
    if isinstance(field, models.ForeignKey | models.OneToOneField):
        return field.related_model._default_manager.order_by("pk").first()
    if isinstance(field, models.JSONField):
        return [PAYLOAD]
    if isinstance(field, models.CharField | models.TextField):
        return PAYLOAD[: field.max_length] if field.max_length else PAYLOAD
    if isinstance(field, models.DateTimeField):
        return timezone.now() + timedelta(hours=1)
    if isinstance(field, models.DecimalField):
        return Decimal("0.01")
    if isinstance(field, models.BooleanField):
        return False
    if isinstance(field, models.IntegerField | models.FloatField):
        return 1
    return None


def _generic_row(model) -> bool:
    values = {}
    for field in model._meta.concrete_fields:
        if field.primary_key or field.has_default() or field.null or getattr(field, "auto_now", 0) \
                or getattr(field, "auto_now_add", 0):
            continue
        value = _fill(field, model)
        if value is None and not field.blank:
            return False
        values[field.name] = value
    with transaction.atomic():  # a failed insert must not poison the test's transaction
        model._default_manager.create(**values)
    return True


def populate(*, owner=None) -> dict:
    """One row (or a few) of every project model, text full of MARKER and script payloads."""
    from curation import models as cm
    from ingest.models import Note, Vault

    root = Path(tempfile.mkdtemp(prefix="crawl-vault-"))
    (root / "Crawl note.md").write_text(f"---\ntitle: {MARKER}\n---\n{BODY}", encoding="utf-8")
    (root / "Other note.md").write_text(f"{MARKER} other\n", encoding="utf-8")
    vault = Vault.objects.create(name=f"{MARKER} vault", root=str(root))
    note = Note.objects.create(
        vault=vault, path="Crawl note.md", title=PAYLOAD, body=BODY,
        frontmatter_raw=f"title: {MARKER}", frontmatter={"title": PAYLOAD}, tags=[PAYLOAD],
        content_hash="0" * 64, size=len(BODY),
    )
    other = Note.objects.create(vault=vault, path="Other note.md", title="Other", body=MARKER)
    job = cm.Job.objects.create(
        vault=vault, selection=PAYLOAD, fields=cm.ALL_FIELDS, model="claude-haiku-4-5",
        state=cm.Job.State.SUCCEEDED, error=PAYLOAD, created_by=owner,
    )
    batch = cm.Batch.objects.create(job=job, provider_id=f"msgbatch_{MARKER}", error=PAYLOAD)
    item = cm.Item.objects.create(
        job=job, note=note, batch=batch, custom_id=f"{MARKER}-1", state=cm.Item.State.SUCCEEDED,
        error=PAYLOAD, result={"text": PAYLOAD},
    )
    values = {"tags": [PAYLOAD, "ai/agents"], "description": PAYLOAD, "related": ["Other note"]}
    suggestions = [
        cm.Suggestion.objects.create(
            item=item, note=note, job=job, field=field, value=value, model="claude-haiku-4-5"
        )
        for field, value in values.items()
    ]
    cm.Review.objects.create(
        suggestion=suggestions[0], decision=cm.Review.Decision.EDITED, value=[PAYLOAD],
        before=[PAYLOAD], reviewer=owner, comment=PAYLOAD,
    )
    cm.TagRename.objects.create(vault=vault, old=f"{MARKER}/old", new=f"{MARKER}/new")
    # A curate-now (the first operation, so its page is crawled) showing those suggestions.
    cm.Operation.objects.create(
        kind=cm.Operation.Kind.CURATE, state=cm.Operation.State.SUCCEEDED, created_by=owner,
        params={"curate_now": True, "note": note.pk}, job=job, description=PAYLOAD,
    )  # fmt: skip
    cm.NoteWords.objects.create(note=note, content_hash="0" * 64, words=f"{MARKER}:1", links="")
    # Models added by other areas get one generic row each (several passes: foreign keys).
    pending = [
        m for app in PROJECT_APPS for m in apps.get_app_config(app).get_models()
        if not m._default_manager.exists()
    ]
    for _ in range(3):
        still = []
        for model in pending:
            try:
                if not _generic_row(model):
                    still.append(model)
            except Exception:
                still.append(model)
        pending = still
    return {"vault": vault, "note": note, "other": other, "job": job, "item": item,
            "suggestions": suggestions, "root": root, "unfilled": pending}


def fingerprint() -> dict:
    """Every row of the project's models (and users/groups), to prove a crawl changed nothing."""
    from django.contrib.auth.models import Group, User
    from django.core import serializers

    result = {}
    project_models = [m for app in PROJECT_APPS for m in apps.get_app_config(app).get_models()]
    for model in [*project_models, Group, *apps.get_app_config("django_q").get_models()]:
        result[model._meta.label] = serializers.serialize("json", model._default_manager.order_by("pk"))
    result["users"] = list(
        User.objects.order_by("pk").values_list("username", "password", "is_staff", "is_superuser")
    )
    return result
