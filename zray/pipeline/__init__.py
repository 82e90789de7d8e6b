"""Planning and driving a run."""
