"""KPI: rollups from every topic, targets, the KPI query API, the dashboard and the KPI topic."""
