"""ari component of call coach."""
