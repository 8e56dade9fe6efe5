"""Reports: ticket figures over a period, computed by SQL (never by loading tickets)."""
