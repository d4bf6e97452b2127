"""AWS-compatible services: one package per service, operations as plain functions."""
