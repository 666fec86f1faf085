"""The TCP gateway: long-lived sessions for PostgreSQL (and later MySQL, SSH) on the Fargate task."""
