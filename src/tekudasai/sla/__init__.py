"""Service levels: business calendars, SLA policies and their clocks."""
