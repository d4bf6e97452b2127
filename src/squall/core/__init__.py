"""Shared vocabulary of every layer: HTTP request/response values, errors, request context.

Nothing here imports any other squall package.
"""
