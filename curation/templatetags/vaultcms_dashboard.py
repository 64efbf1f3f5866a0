"""`{% vaultcms_dashboard as dash %}`: the admin home page's numbers and next steps."""

from django import template

from curation.dashboard import dashboard_counts, spending_over_time, watched_vaults
from curation.review.decisions import pending_count_for
from curation.roles import can_ingest_url, can_view_watches

register = template.Library()


@register.simple_tag(takes_context=True)
def vaultcms_dashboard(context):
    dash = dashboard_counts()
    request = context.get("request")
    dash.can_add_url = bool(request and can_ingest_url(request.user))
    # Suggestions this moderator can take now (others' locked notes left out); None: not one.
    dash.awaiting_you = pending_count_for(request.user) if request else None
    dash.spending = spending_over_time()
    # Vault names and what their jobs did: for the roles that may see the watches.
    dash.watches = watched_vaults() if request and can_view_watches(request.user) else []
    return dash
