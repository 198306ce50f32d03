"""The chat page's assets, installed as ``chatstream.static`` (see setup.cfg)."""
