"""Create the review roles as groups: Curator (queues jobs), Moderator (decides), Viewer (reads)."""

from django.db import migrations

VIEW_ALL = [
    "ingest.view_vault",
    "ingest.view_note",
    "curation.view_job",
    "curation.view_batch",
    "curation.view_item",
    "curation.view_suggestion",
    "curation.view_review",
    "curation.view_tagrename",
    "curation.view_reviewlock",
]

ROLES = {
    "Viewer": VIEW_ALL,
    # add_job is what the "Curate selected notes" admin action and the job admin check.
    "Curator": VIEW_ALL + ["curation.add_job", "curation.change_job"],
    "Moderator": VIEW_ALL + ["curation.review_suggestion", "curation.add_tagrename"],
}


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after migrate; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        for dotted in codenames:
            app_label, codename = dotted.split(".")
            perm = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if perm is not None:
                group.permissions.add(perm)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("ingest", "0001_initial"),
        ("curation", "0003_review_permission_and_lock"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
