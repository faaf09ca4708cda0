"""Palmer Penguins example: a small, real tabular data set with missing values."""
