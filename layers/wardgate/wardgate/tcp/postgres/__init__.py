"""PostgreSQL frontend/backend protocol 3.0 for the TCP gateway: the sans-I/O wire codec and its sessions."""
