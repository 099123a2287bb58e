"""Real parts started for the test tiers and benchmarks, not fakes: Asterisk 22 in the chroot
`scripts/asterisk-root` makes (with the repo's own configuration) and baresip SIP phones.
Used by tests/ and bench/; never by a service."""
