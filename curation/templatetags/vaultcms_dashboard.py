"""`{% vaultcms_dashboard as dash %}`: the admin home page's numbers and next steps."""

from django import template

from curation.dashboard import dashboard_counts
from ingest.admin_url import can_ingest_url

register = template.Library()


@register.simple_tag(takes_context=True)
def vaultcms_dashboard(context):
    dash = dashboard_counts()
    request = context.get("request")
    dash.can_add_url = bool(request and can_ingest_url(request.user))
    return dash
