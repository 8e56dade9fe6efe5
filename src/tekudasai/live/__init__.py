"""Live updates: server-sent events of ticket changes, presence on tickets, and the reply
collision check. One LISTEN connection per process (`hub.Hub`) fans NOTIFYs out to the streams
of that process; PostgreSQL carries them between workers and nodes."""
