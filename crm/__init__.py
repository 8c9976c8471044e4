"""CRM: contacts across channels, merge, companies, attributes, import and export."""
