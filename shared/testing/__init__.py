"""Helpers for the project's test suites: real infrastructure and real processes, no mocks."""
