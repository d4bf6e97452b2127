"""Identities: accounts, principals and their access keys (the IAM API comes later)."""
