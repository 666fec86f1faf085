"""SSH through the TCP gateway: an asyncssh server facing agents, an asyncssh client facing the host."""
