"""Model training: data shaping, time-series search, and the three candidate families."""
