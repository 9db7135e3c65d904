"""A contact's activity counters (visits, purchases, revenue, last activity), fed by touchpoints."""
