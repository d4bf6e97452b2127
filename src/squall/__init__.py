"""squall: a self-hosted serverless cloud, wire-compatible with the AWS APIs."""

__version__ = "0.1.0"
