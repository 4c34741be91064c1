"""Runners that drive any recipe: in memory, over one feature file, sharded on Dask."""
