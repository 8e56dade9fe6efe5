"""Outgoing webhooks: signed (Standard Webhooks) HTTP notifications of ticket events."""
