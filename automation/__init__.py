"""Automation: rules on events, assignment, business hours, SLA timers, outgoing webhooks."""
