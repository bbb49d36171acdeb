"""Serving local files: the media view, HTTP conditionals and ranges, and the request's origin."""
