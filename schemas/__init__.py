"""The data contract: Avro schemas, typed records, the topic catalog and the codec."""
