"""WSGI entry point (gunicorn vaultcms.wsgi)."""
import os

from django.core.wsgi import get_wsgi_application

from vaultcms.console import make_streams_safe

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vaultcms.settings")
make_streams_safe()
application = get_wsgi_application()
