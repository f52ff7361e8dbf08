"""Reports built from result records and published numbers; nothing here runs a model."""
