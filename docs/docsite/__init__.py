"""The smallest Django project keyed_storage's documentation builds and runs its examples on."""
