"""Touchpoints: every contact a prospect has with the business, on any channel, from any team."""
