"""SQL written once with sqlglot's expression builder and generated for any dialect."""
