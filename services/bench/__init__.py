"""The benchmark: each scenario measures the product against a baseline taken in the same run.

`python -m services.bench` (or `crm bench`) runs every scenario in `scenarios.SCENARIOS` in embedded
mode and, given a Kafka broker and a PostgreSQL server, in distributed mode, then writes `report.md`
and `report.json`.
"""
