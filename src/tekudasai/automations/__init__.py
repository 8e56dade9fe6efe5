"""Automations: rules that act on tickets when events happen (created, updated, SLA, idle)."""
