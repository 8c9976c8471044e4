"""The HTTP gateway: webhooks, the REST API, health and metrics, all on one aiohttp app."""
