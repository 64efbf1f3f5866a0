"""Browser: log in and land on the dashboard; the login page refuses a wrong password."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_login_lands_on_the_dashboard(open_session, users, make_vault, settings):
    from ingest.importer import vault_import

    vault_import(root=make_vault({"AI/RAG.md": "# RAG\n\ntext\n", "b.md": "# B\n\nx\n"}), name="v")
    me = open_session("admin")
    me.go("/login/")
    me.shot("login page")
    page = me.login("admin")
    page.wait_for_selector("#vaultcms-dashboard")
    me.shot("dashboard")
    assert page.inner_text("#dash-notes .vc-num") == "2"
    assert "next" in page.inner_text("#step-curate").lower()


def test_wrong_password_is_refused(open_session, users):
    me = open_session("anon")
    me.go("/login/")
    me.page.fill("#id_username", "admin")
    me.page.fill("#id_password", "wrong")
    me.page.click("input[type=submit]")
    me.page.wait_for_selector(".errornote")
    me.shot("refused")
    assert "/login/" in me.page.url
