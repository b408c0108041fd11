"""Measurements of music: on the grid (``grid``), MusDr's statistics (``musdr``), the fit to a
video (``control``), what a listener meets (``quality``), repetition (``repetition``) and the
features of the independent genre classifier (``genre_features``)."""
