"""Identity stitching: which contact an email hash, an external id or an anonymous id belongs to."""
