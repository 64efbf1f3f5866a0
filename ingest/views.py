"""Admin page "Add a note from a web address": a form in front of `note_create_from_url`.

Served by the Note admin (`NoteAdmin.get_urls`), which decides who may use it
(`has_ingest_permission`), which form it shows (`get_url_ingest_form`) and where it leads once
the note is added (`response_url_ingest`): another app's admin may extend the last two, as
curation's does with "Curate now".
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from ingest.models import Note, Vault
from ingest.url_ingest import DuplicateUrl, UrlIngestError, note_create_from_url


class UrlIngestForm(forms.Form):
    url = forms.URLField(
        label="Web address",
        max_length=2000,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"size": 80, "placeholder": "https://", "autofocus": True}),
    )
    vault = forms.ModelChoiceField(queryset=Vault.objects.all(), empty_label=None)
    folder = forms.CharField(
        required=False,
        max_length=500,
        help_text="Folder inside the vault, e.g. Inbox/Web. Empty: the vault's top folder.",
        widget=forms.TextInput(attrs={"size": 40, "list": "vault-folders"}),
    )


def url_ingest_added(request, model_admin, note: Note):
    """The default once a note is added: say so and open its page."""
    model_admin.message_user(
        request,
        f"Added {note.path} from {note.frontmatter.get('source')}. "
        "Select it in the list to curate it.",
        messages.SUCCESS,
    )
    return redirect(reverse("admin:ingest_note_change", args=[note.pk]))


def url_ingest_view(request, model_admin):
    if not model_admin.has_ingest_permission(request):
        raise PermissionDenied
    initial = {"folder": "Inbox"}
    vault_id = request.GET.get("vault")
    if vault_id and vault_id.isdigit():
        initial["vault"] = vault_id
    form = model_admin.get_url_ingest_form(request)(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            note = note_create_from_url(
                url=form.cleaned_data["url"],
                vault=form.cleaned_data["vault"],
                folder=form.cleaned_data["folder"],
            )
        except DuplicateUrl as exc:
            link = reverse("admin:ingest_note_change", args=[exc.note.pk])
            form.add_error(
                None, format_html('{} — <a href="{}">open the existing note</a>', str(exc), link)
            )
        except UrlIngestError as exc:
            form.add_error(None, str(exc))
        else:
            return model_admin.response_url_ingest(request, note, form)
    folders = (
        Note.objects.exclude(folder="").order_by("folder").values_list("folder", flat=True)
    ).distinct()[:200]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Add a note from a web address",
        "form": form,
        "folders": folders,
        "opts": model_admin.model._meta,
        "has_vaults": Vault.objects.exists(),
    }
    return TemplateResponse(request, "admin/ingest/note/from_url.html", context)
