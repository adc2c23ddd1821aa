"""Parity with the original: every stage's outputs against ../shared/reference, within measured tolerances.

``checks.py`` runs each stage on the fixtures' inputs and measures how far our outputs are from the
recorded ones; ``tolerances.py`` holds the tolerance of each kind of output and the rule it was set by;
``compare.py`` turns a pair of outputs into a :class:`compare.Deviation`. The parity tests assert on
these deviations and ``python -m tools.parity_report`` prints them.
"""
