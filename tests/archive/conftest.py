from tests.pg import pg_server, record_db

__all__ = ["pg_server", "record_db"]
