"""Speed benchmarks (``make bench``): each module's ``run()`` returns a dict of results."""
