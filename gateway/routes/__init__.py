"""Every REST route of the hub, in one table (see ``gateway/route.py``).

A new module adds its ``ROUTES`` here; the OpenAPI document and the authorization matrix test
pick it up from this list.
"""

from __future__ import annotations

from gateway.route import Route
from gateway.routes import (
    account,
    agent_bots,
    ai,
    assignment,
    audit,
    auth,
    automation_rules,
    business_hours,
    calls,
    canned,
    channels,
    contact_imports,
    contacts,
    conversations,
    crm,
    inboxes,
    labels,
    macros,
    outgoing_webhooks,
    person_data,
    platform,
    profile,
    reports,
    segments,
    setup,
    sla_policies,
    sms,
    teams,
    threecx,
    users,
)

ALL_ROUTES: list[Route] = [
    *setup.ROUTES,
    *auth.ROUTES,
    *profile.ROUTES,
    *account.ROUTES,
    *users.ROUTES,
    *teams.ROUTES,
    *inboxes.ROUTES,
    *channels.ROUTES,
    *conversations.ROUTES,
    *contacts.ROUTES,
    *crm.ROUTES,
    *person_data.ROUTES,
    *contact_imports.ROUTES,
    *segments.ROUTES,
    *sms.ROUTES,
    *calls.ROUTES,
    *threecx.ROUTES,
    *labels.ROUTES,
    *canned.ROUTES,
    *audit.ROUTES,
    *platform.ROUTES,
    *reports.ROUTES,
    *outgoing_webhooks.ROUTES,
    *automation_rules.ROUTES,
    *assignment.ROUTES,
    *business_hours.ROUTES,
    *sla_policies.ROUTES,
    *macros.ROUTES,
    *agent_bots.ROUTES,
    *ai.ROUTES,
]
