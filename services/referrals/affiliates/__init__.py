"""Affiliates: partners, and customers who refer; their API keys."""
