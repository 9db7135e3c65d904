"""The unified timeline: every event about a prospect, from every service, in one ordered list."""
