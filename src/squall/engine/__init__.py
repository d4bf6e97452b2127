"""Invocation engine: concurrency, sandbox scheduling, the durable async queue."""
