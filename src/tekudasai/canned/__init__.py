"""Canned responses: reply texts agents reuse, with placeholders filled per ticket."""
