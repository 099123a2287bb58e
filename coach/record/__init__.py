"""The call record in PostgreSQL: schema and migrations, roles, and the queries that more
than one component needs (the archive writes them, the relay reads them). DESIGN.md "Call
record"."""
