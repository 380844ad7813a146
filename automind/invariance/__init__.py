"""The geometry of consistent parameter sets (all in prior-standardised coordinates)."""
