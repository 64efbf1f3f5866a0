"""Top-level URL routes: the admin is the app; a few views live beside it."""
from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path


def healthz(request):
    """Liveness for a process manager or load balancer; reveals nothing."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("curation/", include("curation.urls")),
    path("", admin.site.urls),
]
