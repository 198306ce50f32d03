"""HTTP views, one blueprint per module. Views never import ``chatstream.adapters``."""
