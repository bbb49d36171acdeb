"""Where the demo stores each of its files: one key builder per field, from keyed_storage's key_template.

A builder fills a pattern from the instance being saved ({id} is its primary key, which
keyed_storage fills in for a new row) and names each file <key>/<token>/<filename>. Migrations
record the pattern (keyed_storage.keys.KeyTemplate('events/{id}/logo')), not this module, so
builders may move or be renamed freely.
"""

from keyed_storage import key_template

event_logo_key = key_template("events/{id}/logo")
event_background_key = key_template("events/{id}/background")
session_audio_key = key_template("events/{event_id}/sessions/{id}/audio")
session_slides_key = key_template("events/{event_id}/sessions/{id}/slides")
speaker_photo_key = key_template("events/{event_id}/speakers/{id}/photo")
sponsor_logo_key = key_template("events/{event_id}/sponsors/{id}/logo")
# The avatar is on a Profile row beside Django's User, whose {id} would be the profile's: the
# key takes the user's id instead, so it reads users/<user id>/avatar. (A custom User model
# holding the avatar itself would use "users/{id}/avatar".)
profile_avatar_key = key_template("users/{user_id}/avatar")
