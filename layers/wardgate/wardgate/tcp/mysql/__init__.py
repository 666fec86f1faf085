"""The MySQL/MariaDB front door of the TCP gateway: wire codec, authentication scrambles, row masking."""
