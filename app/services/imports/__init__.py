"""Bringing students in from elsewhere: the original server's bucket (:mod:`.original`)."""
