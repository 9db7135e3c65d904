"""Journeys: touchpoints, identity stitching, the unified timeline, journey maps and funnels."""
