"""The Ingest Gateway's syslog listener: RFC 6587 framing, TCP/UDP serving, batching."""
