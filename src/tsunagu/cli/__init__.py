"""The `tsunagu` command line: thin over `tsunagu.app` and the admin API."""
