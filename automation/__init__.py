"""Automation: rules on events, assignment strategies, business hours, SLA timers, outgoing webhooks."""
