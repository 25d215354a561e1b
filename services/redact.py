"""Passwords out of what we print and log: `scheme://user:password@host` -> `scheme://user:***@host`."""
import re

_CREDENTIALS = re.compile(r"(\b[a-zA-Z][\w+.-]*://[^:/@\s]*:)[^@\s]*@")


def mask_passwords(text) -> str:
    return _CREDENTIALS.sub(r"\1***@", str(text))
