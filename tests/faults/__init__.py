"""Fault tests with real processes (issue 21), and the harness they share.

- `sink`: an SMTP server in a process of its own (aiosmtpd) that accepts, delays, hangs,
  refuses or drops the connection after the message data, with or without PIPELINING,
  and records every message it received by Message-ID.
- `pg_cluster`: a throwaway PostgreSQL cluster (initdb, pg_ctl) on a spare port, which a
  test may stop, kill and start again; never the shared server.
- `tally`: what the server accepted against what the sink received: delivered,
  duplicated (by Message-ID) and lost.
- `serving`: `python -m reset_mcp serve` as users run it, over stdio or streamable HTTP.
"""
