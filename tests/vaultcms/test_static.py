"""whitenoise serves the admin's static files with DEBUG off (collected into a temp folder)."""

import subprocess
import sys

from tests.vaultcms.test_settings import MANAGE, django_eval, production_env


def test_admin_css_is_served_with_debug_off(tmp_path):
    static_root = tmp_path / "static"
    env = production_env(tmp_path, VAULTCMS_STATIC_ROOT=str(static_root))
    subprocess.run(
        [sys.executable, MANAGE, "collectstatic", "--noinput", "-v0"],
        env=env,
        check=True,
        timeout=300,
    )
    assert (static_root / "admin" / "css" / "base.css").is_file()
    assert (static_root / "staticfiles.json").is_file()  # the manifest with hashed names
    out = django_eval(
        env,
        "import re\n"
        "from django.conf import settings\n"
        "from django.test import Client\n"
        "c = Client(HTTP_HOST='vault.example.com', HTTP_X_FORWARDED_PROTO='https')\n"
        "plain = c.get('/static/admin/css/base.css')\n"
        "login = c.get('/login/')\n"
        "page = login.content.decode()\n"
        "hashed = re.search(r'/static/admin/css/base\\.[0-9a-f]{12}\\.css', page)\n"
        "h = c.get(hashed.group(0), HTTP_ACCEPT_ENCODING='gzip')\n"
        "out = dict(debug=settings.DEBUG, plain=plain.status_code, type=plain['Content-Type'],\n"
        "           body=b''.join(plain.streaming_content)[:200].decode('utf-8', 'replace'),\n"
        "           login=login.status_code, hashed=h.status_code,\n"
        "           cache=h.get('Cache-Control', ''), encoding=h.get('Content-Encoding', ''))",
    )
    assert out["debug"] is False
    assert (out["plain"], out["login"], out["hashed"]) == (200, 200, 200)
    assert out["type"].startswith("text/css") and "DJANGO Admin styles" in out["body"]
    assert "immutable" in out["cache"] and out["encoding"] == "gzip"
