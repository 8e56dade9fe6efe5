"""Notifications: who hears about each ticket event (mail and the in-app feed), and their
preferences. A handler in `tasks.EVENT_HANDLERS` runs once per ticket event."""
