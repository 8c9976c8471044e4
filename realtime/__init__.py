"""Realtime agent delivery over Socket.IO: per-agent sequenced streams with replay."""
