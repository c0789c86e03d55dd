from rest_framework.routers import SimpleRouter


class OptionalSlashRouter(SimpleRouter):
    """Paths answer with or without their trailing slash (`PUT .../read` and `.../read/`)."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"
