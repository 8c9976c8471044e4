"""Actions: the only code that changes domain state and emits events.

Gateway handlers, channels and consumers call these; each action writes its rows and its outbox
events in one transaction, so a change and the news of it are never separated.
"""
