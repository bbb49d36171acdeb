"""What a file is: its type from its bytes, and reading its first bytes without losing them."""
