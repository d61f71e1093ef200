"""Side-by-side measurements of tunesmith against peer tools (not part of the installed package)."""
