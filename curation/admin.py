"""Admin for jobs, batches, items, suggestions and reviews."""
