"""AI: local reply suggestions, language id, sentiment and intent, as a bus consumer."""
