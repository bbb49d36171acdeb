"""Direct uploads: the browser sends a file straight to storage, the server checks it after.

tickets.py issues and finishes them, multipart.py splits large files into parts, receiver.py
is the local stand-in for S3's POST and PUT, forms.py and views.py are the Django side, and
static/keyed_storage/direct.js is the browser side.
"""

from .tickets import Ticket, finish_upload, image_size, start_upload

__all__ = ["Ticket", "finish_upload", "image_size", "start_upload"]
