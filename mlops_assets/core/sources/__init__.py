"""Real data sources: EIA-930 hourly demand and Open-Meteo hourly weather, as pure functions
(request parameters, paging, parsing, checks and the join into a landing-zone batch)."""
