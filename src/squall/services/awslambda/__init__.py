"""The AWS Lambda API."""
