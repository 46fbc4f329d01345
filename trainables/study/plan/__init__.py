"""What a study decided before it started (the plan in ``search.json``) and what one run of it is given; the defaults,
profiles, the probed space, resources, pace and time budgets these come from."""
