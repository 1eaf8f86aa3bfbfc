"""The Rwsfile language: parsing, imports, adapting to JSON, formatting."""
