"""Admin for jobs, batches and items."""
