"""Content and campaign performance: the touchpoints a content id or a campaign drew, and the purchases
that followed them."""
