"""`review approve|reject [--job ID | --all] --as USERNAME`: decide pending suggestions in bulk."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from curation.models import Job, Review, Suggestion
from curation.review.decisions import ReviewError, suggestions_decide
from curation.roles import can_review


class Command(BaseCommand):
    help = (
        "Approve or reject pending suggestions in bulk as a moderator (--as USERNAME). "
        "Human edits are never overwritten: suggestions for a field a moderator edited are "
        "superseded, not approved. Notes locked by another moderator are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("decision", choices=["approve", "reject"])
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument("--job", type=int, metavar="ID", help="Only this job's suggestions.")
        scope.add_argument("--all", action="store_true", help="Every pending suggestion.")
        parser.add_argument(
            "--as", dest="username", metavar="USERNAME",
            help="The moderator (or superuser) the decisions are recorded for.",
        )  # fmt: skip
        parser.add_argument("--comment", default="", help="Stored with every decision.")

    def handle(self, *args, decision, job, all, username, comment, **options):
        if job is None and not all:
            raise CommandError("say which suggestions: --job ID or --all")
        if not username:
            raise CommandError("say who decides: --as USERNAME (a moderator)")
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        if not can_review(user):
            raise CommandError(f"{username} is not a moderator (needs the Moderator group)")
        suggestions = Suggestion.objects.all()
        if job is not None:
            if not Job.objects.filter(pk=job).exists():
                raise CommandError(f"no job {job}")
            suggestions = suggestions.filter(job_id=job)
        verdict = Review.Decision.APPROVED if decision == "approve" else Review.Decision.REJECTED
        try:
            result = suggestions_decide(
                queryset=suggestions, user=user, decision=verdict, comment=comment
            )
        except ReviewError as exc:
            raise CommandError(str(exc)) from None
        return result.summary(verdict)
