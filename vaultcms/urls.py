"""Top-level URL routes: the admin is the app; a few views live beside it."""
from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.http import require_safe


@require_safe
def healthz(request):
    """Liveness for a process manager or load balancer; reveals nothing.

    A database that cannot answer makes this 503 with no detail: the reason goes to the
    log (redacted), never into a page anyone can fetch without logging in.
    """
    import logging

    from django.db import DatabaseError, connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        logging.getLogger("vaultcms.health").error("health check failed: database: %s", exc)
        response = JsonResponse({"status": "unavailable"}, status=503)
    else:
        response = JsonResponse({"status": "ok"})
    response["Cache-Control"] = "no-store"
    return response


@require_safe
def favicon(request):
    """Pages name their icon; this answers browsers that ask for /favicon.ico anyway."""
    from django.http import HttpResponsePermanentRedirect
    from django.templatetags.static import static

    return HttpResponsePermanentRedirect(static("curation/favicon.svg"))


admin.site.site_header = "VaultCMS"
admin.site.site_title = "VaultCMS"
admin.site.index_title = "Dashboard"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    path("curation/", include("curation.urls")),
    path("", admin.site.urls),
]

# A plain page with a request id to find the error in the log (DEBUG on or off: vaultcms.logs).
handler500 = "vaultcms.logs.server_error"
