"""CloudWatch metrics (`monitoring`: smithy-rpc-v2-cbor, JSON and query)."""
