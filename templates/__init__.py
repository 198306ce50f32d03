"""The chat page's Jinja templates, installed as ``chatstream.templates`` (see setup.cfg)."""
