"""relay component of call coach."""
