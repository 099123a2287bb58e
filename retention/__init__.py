"""The retention and erasure job: removes call data past its retention period and erases a
call's data on request (`python -m retention`)."""
