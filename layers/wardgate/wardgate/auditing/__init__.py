"""Auditing recordings: the query engine over all of them, named questions, timelines, exports and replay."""
