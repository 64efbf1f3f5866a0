"""Views beside the admin: job progress and review pages."""
from django.urls import path

app_name = "curation"

urlpatterns: list = []
