from django.db import migrations, models


def descriptions_written(apps, schema_editor):
    """Notes exported before `description_written` was kept: the description our last export
    wrote is still in the file when it equals that export's approved value."""
    Review = apps.get_model("curation", "Review")
    Note = apps.get_model("ingest", "Note")
    last: dict[int, str] = {}
    rows = (
        Review.objects.filter(suggestion__field="description", exported_at__isnull=False)
        .exclude(decision="rejected")
        .order_by("exported_at", "id")
        .values_list("suggestion__note_id", "value")
    )
    for note_id, value in rows.iterator(chunk_size=2000):
        if isinstance(value, str):
            last[note_id] = " ".join(value.split())
    ids = sorted(last)
    for start in range(0, len(ids), 500):
        for note in Note.objects.filter(id__in=ids[start : start + 500]).only("id", "frontmatter"):
            now = note.frontmatter.get("description") if isinstance(note.frontmatter, dict) else None
            if now and now == last[note.id]:
                Note.objects.filter(id=note.id).update(description_written=now)


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0017_note_words_format"),
        ("ingest", "0004_note_description_written"),
    ]

    operations = [
        migrations.AddField(
            model_name="review",
            name="replaces_own",
            field=models.BooleanField(
                db_default=False,
                default=False,
                help_text="Decided on the note's page over the description the person wrote, "
                "on purpose.",
            ),
        ),
        migrations.RunPython(descriptions_written, migrations.RunPython.noop),
    ]
