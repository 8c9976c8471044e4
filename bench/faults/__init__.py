"""The fault runner: signed webhooks at a steady rate, agent sockets, a fault, a reconciliation."""
