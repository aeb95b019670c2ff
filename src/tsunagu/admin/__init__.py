"""The admin UI: server-rendered pages (Jinja2) for the people who run the shop."""
