"""Reports for reviewers: the data-quality report (HTML with charts) in the lake."""
