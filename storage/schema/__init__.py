"""The migration history's parts that are done changing: what a step is, and the first steps that shipped.

``storage/revisions.py`` holds the one list that ``storage/migrations.py`` applies; it had grown past the size a
module should have, and a step that shipped is never edited again, so the oldest steps moved here. New steps are
still appended to the end of that list, never here.
"""
