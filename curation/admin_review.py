"""Admin for suggestions, reviews and the taxonomy."""
