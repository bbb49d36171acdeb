"""A file's life on a model: primary keys before names, old files removed only after commit."""
