"""`vbgm batch`: many clips, each scored like `vbgm score`, on local processes or a Ray cluster."""
