"""What every service's HTTP surface shares: errors, request ids, health, metrics, dependencies."""
