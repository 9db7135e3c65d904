"""The event bus: one interface (`base`), two implementations (`embedded`, `kafka`)."""
