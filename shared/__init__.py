"""The project's own library: settings, database, events, bus, outbox, inbox and web helpers."""
