"""Te Kudasai: an open-source service desk on PostgreSQL."""

__version__ = "0.1.0"
