"""Web chat widget benchmark: many concurrent visitors on one hub process."""
