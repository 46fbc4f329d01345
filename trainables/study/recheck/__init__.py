"""The top-K re-check: is the search's best configuration really the best? Its statistics, its rounds, its table."""
