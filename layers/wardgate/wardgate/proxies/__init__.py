"""Protocol proxies: each turns an agent's request into exactly one upstream call on its connection."""
