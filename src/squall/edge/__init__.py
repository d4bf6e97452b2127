"""The HTTP edge: request authentication and body decoding in front of the protocols."""
