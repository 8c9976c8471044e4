"""Channels: one folder per provider, each turning provider traffic into canonical messages."""
