"""The slug function of the Python comparators: `<slugified name>-<id>`.

The same output as the Rust `slug` crate 0.1.6 (which the example and the
native program use) on the benchmark's data set: ASCII letters lowercased,
digits kept, other scripts transliterated (`Émile` becomes `emile`; here with
text-unidecode, as python-slugify does by default; Rust uses deunicode), and
every other run of characters one `-`, none at either end. The benchmark
checks every row against the Rust function after every run.

Written out rather than taken from python-slugify: its `slugify` gives the same
slugs here but costs about 35 µs per name on this machine (unescaping HTML
entities, several regular expressions) against under 2 µs for this, and a
comparator should be the fast script a user would write, not a slow one.
"""

import re

from text_unidecode import unidecode

_OTHER = re.compile(r"[^a-z0-9]+")


def slugify(name: str) -> str:
    if not name.isascii():
        name = unidecode(name)
    return _OTHER.sub("-", name.lower()).strip("-")


def slug_for(name: str, user_id: int) -> str:
    base = slugify(name)
    return f"{base}-{user_id}" if base else f"user-{user_id}"
