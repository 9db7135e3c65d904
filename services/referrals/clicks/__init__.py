"""Clicks: the `/r/{code}` redirect, and the durable path that takes each click to the database."""
