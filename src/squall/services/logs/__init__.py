"""CloudWatch Logs (`logs`, JSON 1.1)."""
