"""keyed_storage: files under meaningful keys, in S3 or on the local disk, with absolute links."""

from .keys import key_template
from .storage import KeyedStorage
from .uploads import upload

__all__ = ["KeyedStorage", "key_template", "upload"]
__version__ = "0.1.0"
