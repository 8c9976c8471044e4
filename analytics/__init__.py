"""Analytics: a bus consumer into ClickHouse (chDB embedded) and the metric queries on it."""
