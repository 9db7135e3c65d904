"""Purchases the journeys service reports, counted as sales of the programs that say so."""
