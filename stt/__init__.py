"""stt component of call coach."""
