"""Procurement integrity (issue 17): collusion checks on each procurement's bids before scoring, red flags on
a bureau's procurement history, and what the flagged awards delivered."""
