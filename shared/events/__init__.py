"""The event contract: base model, topics, the catalog of event types, the registry, the envelope."""
