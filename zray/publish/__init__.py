"""Distribution: finished episodes out to YouTube (`zray.publish.youtube`).

Only `settings` is imported here, so the base install can read a config with a `[youtube]`
table; the uploader and the OAuth code need the `publish` extra (google-api-python-client,
google-auth-oauthlib, google-auth-httplib2).
"""

from zray.publish.settings import YouTubeConfig

__all__ = ["YouTubeConfig"]
