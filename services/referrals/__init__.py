"""Referrals: programs, affiliates, links, click redirects, postbacks, attribution, commissions."""
