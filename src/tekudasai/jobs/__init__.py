"""One durable job queue in PostgreSQL: everything that runs after or beside a request.

Layer: above `db`, below the domains, so any domain can enqueue in its own transaction.
`queue` enqueues and administers jobs, `worker` claims and runs them; which task names exist
and which run periodically is listed once, in `tekudasai.tasks`.
"""
