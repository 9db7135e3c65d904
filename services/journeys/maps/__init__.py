"""Journey maps: stages a contact moves through, each contact's current stage, and funnels."""
