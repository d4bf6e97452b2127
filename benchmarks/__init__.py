"""squall's benchmarks: ratios against a floor measured in the same run."""
