"""Inbound mail: one code path (parse, decide, store) behind `tekudasai mail ingest`,
`POST /api/inbound/email` and the IMAP poller."""
