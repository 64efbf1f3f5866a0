"""The project's URLs plus one view that fails with a key in its exception (error-page tests)."""

import os

from django.urls import path

from vaultcms.urls import handler500  # noqa: F401 (the project's error page)
from vaultcms.urls import urlpatterns as project_urlpatterns


def boom(request):
    api_key = os.environ.get("ANTHROPIC_API_KEY", "")  # a local the DEBUG page would list
    raise RuntimeError(f"upstream refused key {api_key}")


urlpatterns = [path("boom/", boom), *project_urlpatterns]
